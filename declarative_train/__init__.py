"""declarative_train: declarative, config-as-code training for PyTorch.

The executor and tasks work without Hydra; ``declarative_train.metrics`` works from any PyTorch
loop. The ``dtrain`` command composes configs from ``conf/`` and runs them.
"""

from declarative_train._version import __version__
from declarative_train.engine import Event, Executor, TrainerSettings, TrainingContext
from declarative_train.engine.scheduling import SchedulerSpec
from declarative_train.precision import Precision
from declarative_train.tasks import Classification, Regression, StepOutput, Task, auto_move_data


def __getattr__(name: str) -> object:
    # ``dt.metrics`` without importing the metrics package on ``import declarative_train``.
    if name == "metrics":
        import importlib

        return importlib.import_module("declarative_train.metrics")
    raise AttributeError(f"module 'declarative_train' has no attribute {name!r}")


__all__ = [
    "Classification",
    "Event",
    "Executor",
    "Precision",
    "Regression",
    "SchedulerSpec",
    "StepOutput",
    "Task",
    "TrainerSettings",
    "TrainingContext",
    "__version__",
    "auto_move_data",
    "metrics",
]
