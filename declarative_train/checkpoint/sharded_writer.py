"""Writing sharded checkpoint folders at the executor's checkpoint points, every rank taking part.

The counterpart of :class:`~declarative_train.checkpoint.writer.CheckpointWriter` for states
whose tensors are sharded over the ranks (FSDP2): every rank calls :meth:`write` with its part,
the first path is saved by :func:`~declarative_train.checkpoint.sharded.save_sharded`, further
paths (``last.ckpt`` beside a top-k folder) are hard-linked copies committed by rank 0. Writes
are synchronous: a background write would need every rank's snapshot of its shards, and
torch's asynchronous DCP save is not used yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from declarative_train.checkpoint.sharded_folder import copy_sharded
from declarative_train.errors import CheckpointError


class ShardedCheckpointWriter:
    """Writes sharded checkpoint folders; the same calls as ``CheckpointWriter``, on every rank.

    Args:
        rank: this process's rank (rank 0 commits folders and runs ``then``).
        barrier: waits for every rank.
        broadcast_object: rank 0's object on every rank (so a failure on rank 0 reaches all).
    """

    busy = False  # never a write in flight

    def __init__(self, rank: int, barrier: Callable[[], None], broadcast_object: Callable[[Any], Any]) -> None:
        self.rank = rank
        self.barrier = barrier
        self.broadcast_object = broadcast_object

    def write(
        self, state: Mapping[str, Any], paths: Sequence[str | os.PathLike[str]], *, background: bool = False,
        then: Callable[[], None] | None = None, on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Save this rank's ``state`` as the folder at every path of ``paths``; then rank 0 calls ``then``.

        ``background`` and ``on_failure`` are accepted for the writer interface: the folders are
        in place when this returns, and a failure is raised here, on every rank.
        """
        if not paths:
            return
        # Imported here: DCP takes a second to import.
        from declarative_train.checkpoint.sharded import save_sharded

        first, *others = paths
        save_sharded(state, first, rank=self.rank, barrier=self.barrier, broadcast_object=self.broadcast_object)
        failure = None
        if self.rank == 0:
            try:
                for path in others:
                    copy_sharded(first, path)
            except CheckpointError as exc:
                failure = str(exc)
        failure = self.broadcast_object(failure)
        if failure is not None:
            raise CheckpointError(failure)
        if self.rank == 0 and then is not None:
            then()

    def wait(self) -> None:
        """Nothing to wait for: writes are synchronous."""

    def wait_quietly(self) -> None:
        """Nothing to wait for: writes are synchronous."""

    def close(self, *, quietly: bool = False) -> None:
        """Nothing to close: no writer thread."""
