"""What callbacks, loggers and other subscribers may read and change while the executor runs.

Every event handler receives the executor, typed as :class:`TrainingContext`: the part of it
that subscribers are meant to use. Read ``state`` (counters, latest metric values, the last loss
on the device), ``settings``, ``task`` and ``optimizer``; change the run only through
``request_stop``, ``log_metrics`` and ``save_checkpoint``; subscribe through ``events`` (each
subscription can be removed). Anything else on the executor is its own business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from declarative_train.distributed import Distribution
from declarative_train.engine.events import EventBus
from declarative_train.engine.settings import TrainerSettings
from declarative_train.engine.state import LoopState


class TrainingContext(Protocol):
    """The executor as its subscribers see it."""

    @property
    def events(self) -> EventBus[TrainingContext]:
        """Subscribe with ``events.on(Event.X, handler, every=N)``; the result's ``remove()`` ends it."""

    @property
    def state(self) -> LoopState:
        """Where the loop is and the latest metric values (read only)."""

    @property
    def settings(self) -> TrainerSettings:
        """The loop's settings (read only)."""

    @property
    def distribution(self) -> Distribution:
        """Rank, world size and collectives (``reduce_sum``) of this process."""

    @property
    def device(self) -> torch.device:
        """The device the task runs on."""

    @property
    def task(self) -> torch.nn.Module:
        """The task being trained (read its parameters; do not replace it)."""

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer (``None`` before setup); callbacks may read and adjust its param groups."""

    @property
    def loggers(self) -> Sequence[Any]:
        """The loggers of this process (empty on ranks other than zero)."""

    def batches(self, split: str) -> Iterator[Any]:
        """The batches of ``split`` a stage runs (its limits applied), on the device, ready for a step."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Send scalar values to every logger (default step: the global step)."""

    def request_stop(self, reason: str) -> None:
        """End fit after the current step; ``reason`` goes to the log and ``results.json``."""

    def higher_is_better(self, name: str) -> bool | None:
        """Whether a larger value of the logged metric ``name`` is better (``None``: unknown)."""

    def save_checkpoint(
        self, *paths: str, background: bool = False, then: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Save the complete training state to each path (see ``Executor.save_checkpoint``)."""

    def wait_for_checkpoints(self) -> None:
        """Wait for a background checkpoint write; raise its error if it failed."""


@runtime_checkable
class CheckpointProvider(Protocol):
    """A callback that keeps the run's checkpoints: the test uses its best one, a signal its ``write_last``.

    The executor takes the first callback that has all of these.
    """

    monitor: str | None
    best_model_path: str
    best_model_score: float | None

    def write_last(self, context: TrainingContext) -> str:
        """Write ``last.ckpt`` now; return its path."""


@runtime_checkable
class CheckpointWeights(Protocol):
    """A callback that chooses the model weights checkpoints store (weight averaging).

    Checkpoints call it with the model's own ``state_dict()`` and store what it returns as the
    model's weights; whatever it needs to resume (the training weights) goes in its own state.
    Every rank that takes the state calls it, those that do not write with empty ``weights``
    (FSDP's full state dicts: it may gather shards, a collective); it returns them empty then.
    """

    def checkpoint_weights(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights to store for the model, given the model's own."""
