"""A learning-rate scheduler and how the executor steps it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import torch

SchedulerFactory = Callable[..., Any]


@attrs.define
class SchedulerSpec:
    """A scheduler factory (partial taking the optimizer) plus when to step it.

    ``interval``: ``epoch`` or ``step``; ``frequency``: every N intervals; ``monitor``: the metric
    passed to ``ReduceLROnPlateau.step``.
    """

    factory: SchedulerFactory
    interval: str = "epoch"
    frequency: int = 1
    monitor: str | None = None

    def build(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
        """Create the scheduler; ``total_steps`` is filled in for schedulers that take it."""
        kwargs: dict[str, Any] = {}
        try:
            params = inspect.signature(self.factory).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        bound = getattr(self.factory, "keywords", {}) or {}
        if "total_steps" in params and "total_steps" not in bound and "epochs" not in bound:
            kwargs["total_steps"] = max(1, total_steps)
        return self.factory(optimizer, **kwargs)


def is_plateau(scheduler: Any) -> bool:
    """Whether ``scheduler.step`` takes the monitored metric."""
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
