"""Checkpoints: named ``Stateful`` parts in one plain dict, sealed files, a background writer.

``state`` (what a checkpoint holds and how it is restored), ``file`` (atomic writes with an
integrity footer, verified reads), ``writer`` (writes off the training loop), ``rng`` (the RNG
states). This package knows nothing of the executor: the executor hands it the parts to save.
"""

from declarative_train.checkpoint.file import stale_temp_files
from declarative_train.checkpoint.rng import RNGState
from declarative_train.checkpoint.state import (
    FORMAT,
    FORMAT_VERSION,
    ModuleState,
    OptimizerState,
    Stateful,
    StateGroup,
    collect,
    read,
    restore,
)
from declarative_train.checkpoint.writer import CheckpointWriter
from declarative_train.errors import CheckpointError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointWriter",
    "ModuleState",
    "OptimizerState",
    "RNGState",
    "StateGroup",
    "Stateful",
    "collect",
    "read",
    "restore",
    "stale_temp_files",
]
