"""The distribution protocol the executor calls, and its single-process implementation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

_NULL_CONTEXT = contextlib.nullcontext()


class Distribution:
    """How the job is spread over processes. The base class is one process (rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes files and logs."""
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        """Join the process group (nothing to join for one process)."""

    def teardown(self) -> None:
        """Leave the process group."""

    def wrap_training_step(self, task: torch.nn.Module) -> Callable[[Any, int], torch.Tensor]:
        """The callable the loop calls for a training step (DDP routes it through its forward)."""
        return task.training_step  # type: ignore[return-value]

    def sampler(self, dataset: Dataset[Any], *, shuffle: bool, seed: int) -> Sampler[Any] | None:
        """A sampler that shards ``dataset`` across processes (``None``: the loader's own)."""
        return None

    def no_sync(self, model_step: Any) -> contextlib.AbstractContextManager[Any]:
        """Context that skips gradient synchronisation (accumulation micro-batches)."""
        return _NULL_CONTEXT

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over processes."""
        return tensor

    def barrier(self) -> None:
        """Wait for every process."""

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        return obj


class SingleProcess(Distribution):
    """One process on one device."""
