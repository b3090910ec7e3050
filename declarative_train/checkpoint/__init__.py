"""Checkpoints: named ``Stateful`` parts in one plain dict, sealed files, a background writer.

``state`` (what a checkpoint holds and how it is restored), ``file`` (atomic writes with an
integrity footer, verified reads), ``writer`` (writes off the training loop), ``rng`` (the RNG
states), ``sharded*`` (sharded checkpoint folders through ``torch.distributed.checkpoint``; its
save and load are in ``sharded``, not imported here: DCP takes over a second to import). This
package knows nothing of the executor: the executor hands it the parts to save.
"""

from declarative_train.checkpoint.file import stale_temp_files
from declarative_train.checkpoint.rng import RNGState
from declarative_train.checkpoint.sharded_consolidate import (
    consolidate,
    plain_optimizer_state,
    read_any,
)
from declarative_train.checkpoint.sharded_folder import (
    delete_sharded,
    is_sharded,
    recover_interrupted,
    remove_tree,
    stale_temp_folders,
)
from declarative_train.checkpoint.sharded_writer import ShardedCheckpointWriter
from declarative_train.checkpoint.state import (
    FORMAT,
    FORMAT_VERSION,
    ModuleState,
    OptimizerState,
    Stateful,
    StateGroup,
    check_header,
    collect,
    restore,
)
from declarative_train.checkpoint.writer import CheckpointWriter
from declarative_train.errors import CheckpointError

#: Verify and load a checkpoint, a file or a sharded folder (``sharded_consolidate.read_any``).
read = read_any

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointWriter",
    "ModuleState",
    "OptimizerState",
    "RNGState",
    "ShardedCheckpointWriter",
    "StateGroup",
    "Stateful",
    "check_header",
    "collect",
    "consolidate",
    "delete_sharded",
    "is_sharded",
    "plain_optimizer_state",
    "read",
    "read_any",
    "recover_interrupted",
    "remove_tree",
    "restore",
    "stale_temp_files",
    "stale_temp_folders",
]
