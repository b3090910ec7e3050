"""The executor loop, its state and its small event set."""

from declarative_train.engine.events import Event, EventBus
from declarative_train.engine.executor import Executor
from declarative_train.engine.state import LoopState

__all__ = ["Event", "EventBus", "Executor", "LoopState"]
