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

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every process."""
        return [obj]

    # ---------------------------------------------------------------- checkpoint state
    #: Whether taking the checkpoint state is a collective (every rank must take part, though only
    #: rank 0 writes the file): true with several ranks (their RNG states are gathered; FSDP also
    #: gathers shards).
    gathers_state: bool = False
    #: Whether checkpoints are sharded folders that every rank writes its part of (FSDP's
    #: ``state_dict_type="sharded"``); the model and optimizer states are then this rank's shards.
    shards_checkpoints: bool = False
    #: Whether ``wrap_training_step`` moves the task to the device itself (FSDP: each unit as it
    #: is sharded, so the whole model is never on the device at once); else the accelerator
    #: moves it before.
    places_model: bool = False

    def model_state_dict(self, model: torch.nn.Module) -> dict[str, Any]:
        """The model's full weights, as a single-process ``model.state_dict()`` holds them."""
        return model.state_dict()

    def load_model_state_dict(self, model: torch.nn.Module, state: dict[str, Any]) -> None:
        """Load full weights (from :meth:`model_state_dict` or any single-process run)."""
        model.load_state_dict(state)

    def optimizer_state_dict(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's full state in ``optimizer.state_dict()``'s layout."""
        return optimizer.state_dict()

    def load_optimizer_state_dict(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                                  state: dict[str, Any]) -> None:
        """Load a full optimizer state in ``optimizer.state_dict()``'s layout."""
        optimizer.load_state_dict(state)


class SingleProcess(Distribution):
    """One process on one device."""
