"""Writing sharded checkpoint folders at the executor's checkpoint points, every rank taking part.

The counterpart of :class:`~declarative_train.checkpoint.writer.CheckpointWriter` for states
whose tensors are sharded over the ranks (FSDP2): every rank calls :meth:`write` with its part,
the first path is saved by :func:`~declarative_train.checkpoint.sharded.save_sharded`, further
paths (``last.ckpt`` beside a top-k folder) are hard-linked copies committed by rank 0.

A background write copies this rank's part on the calling thread (its shards and values: about
``1/world_size`` of the state, DTensors keeping their layout, tensors on a GPU copied to the CPU)
and saves the copy on a writer thread. The writer's collectives (DCP's plan and finish, the
barriers, rank 0's commit report) run over a gloo process group of its own, created at the first
background write, so they never interleave with the collectives of the training loop.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from declarative_train.checkpoint.sharded_folder import copy_sharded
from declarative_train.checkpoint.writer import BackgroundWrites, snapshot
from declarative_train.errors import CheckpointError
from declarative_train.utils.tree import map_tensors


class ShardedCheckpointWriter(BackgroundWrites):
    """Writes sharded checkpoint folders; the same calls as ``CheckpointWriter``, on every rank.

    Every rank makes the same calls (same paths, same ``background``) in the same order. At most
    one write is in flight: the next :meth:`write` and :meth:`wait` wait for it first and raise
    its error there, on every rank.

    Args:
        rank: this process's rank (rank 0 commits folders and runs ``then``).
        barrier: waits for every rank.
        broadcast_object: rank 0's object on every rank (so a failure on rank 0 reaches all).
        timeout: timeout of the background writer's process group (``None``: torch's default).
    """

    def __init__(self, rank: int, barrier: Callable[[], None], broadcast_object: Callable[[Any], Any],
                 timeout: timedelta | None = None) -> None:
        super().__init__()
        self.rank = rank
        self.barrier = barrier
        self.broadcast_object = broadcast_object
        self.timeout = timeout
        self._group: dist.ProcessGroup | None = None

    def write(
        self, state: Mapping[str, Any], paths: Sequence[str | os.PathLike[str]], *, background: bool = False,
        then: Callable[[], None] | None = None, on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Save this rank's ``state`` as the folder at every path of ``paths``; then rank 0 calls ``then``.

        Later changes to ``state`` do not reach the folders. Without ``background`` the folders
        are in place when this returns and a failure is raised here, on every rank. With it, they
        are in place (and ``then`` has run, on the writer thread) once :meth:`wait` returns, and a
        failure is raised by the next :meth:`write` or :meth:`wait`, after ``on_failure``.
        """
        self.wait()
        if not paths:
            return
        if not background:
            _save(state, paths, self.rank, self.barrier, self.broadcast_object, None, then)
            return
        group = self._writer_group()
        job = functools.partial(_save, shard_snapshot(state), paths, self.rank,
                                functools.partial(dist.barrier, group=group),
                                functools.partial(_broadcast_object, group=group), group, then)
        self.submit(job, on_failure)

    def _writer_group(self) -> dist.ProcessGroup:
        """The background writer's own gloo group (a collective: every rank creates it at the same write)."""
        if self._group is None:
            group = dist.new_group(backend="gloo", timeout=self.timeout)
            assert group is not None  # every rank is a member
            self._group = group
        return self._group


def shard_snapshot(state: Any) -> Any:
    """A copy of this rank's part of ``state`` that later training steps cannot reach.

    Like :func:`~declarative_train.checkpoint.writer.snapshot`, with DTensors copied as DTensors:
    the local shard copied (to the CPU), the mesh and placements kept.
    """
    return map_tensors(state, _copy_shard, memo={})


def _copy_shard(tensor: torch.Tensor) -> torch.Tensor:
    if not isinstance(tensor, DTensor):
        return snapshot(tensor)
    local = tensor.to_local().detach()
    copy = local.clone() if local.device.type == "cpu" else local.cpu()
    return DTensor.from_local(copy, tensor.device_mesh, tensor.placements, run_check=False,
                              shape=tensor.shape, stride=tensor.stride())


def _broadcast_object(obj: Any, group: dist.ProcessGroup) -> Any:
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def _save(state: Mapping[str, Any], paths: Sequence[str | os.PathLike[str]], rank: int, barrier: Callable[[], None],
          broadcast_object: Callable[[Any], Any], group: dist.ProcessGroup | None,
          then: Callable[[], None] | None) -> None:
    # Imported here: DCP takes a second to import.
    from declarative_train.checkpoint.sharded import save_sharded

    first, *others = paths
    save_sharded(state, first, rank=rank, barrier=barrier, broadcast_object=broadcast_object, process_group=group)
    failure = None
    if rank == 0:
        try:
            for path in others:
                copy_sharded(first, path)
        except CheckpointError as exc:
            failure = str(exc)
    failure = broadcast_object(failure)
    if failure is not None:
        raise CheckpointError(failure)
    if rank == 0 and then is not None:
        then()
