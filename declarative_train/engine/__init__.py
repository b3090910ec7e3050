"""The executor loop, its settings, state and small event set; what subscribers may use of it."""

from declarative_train.engine.context import CheckpointProvider, CheckpointWeights, TrainingContext
from declarative_train.engine.events import Event, EventBus, Subscription
from declarative_train.engine.executor import Executor, unwrapped
from declarative_train.engine.phases import PHASES, Instrumentable, PhaseTimer
from declarative_train.engine.settings import TrainerSettings
from declarative_train.engine.state import LoopState

__all__ = [
    "CheckpointProvider",
    "CheckpointWeights",
    "Event",
    "EventBus",
    "Executor",
    "Instrumentable",
    "LoopState",
    "PHASES",
    "PhaseTimer",
    "Subscription",
    "TrainerSettings",
    "TrainingContext",
    "unwrapped",
]
