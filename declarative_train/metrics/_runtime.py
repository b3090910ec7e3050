"""What :class:`~declarative_train.metrics.Metric` wraps around ``update``/``compute``/``forward``.

Per-instance flags, the wrappers installed on every subclass's ``update`` and ``compute``
(caching, ``no_grad``, sync), and the merge of a batch's states into the accumulated ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch
from torch import Tensor

from declarative_train.metrics.sync import Reduction, StateValue

KINDS = ("sum", "mean", "max", "min", "cat")


class Runtime:
    """Mutable per-instance flags kept off ``nn.Module.__setattr__`` (it is slow)."""

    __slots__ = (
        "computed",
        "update_count",
        "in_update",
        "in_compute",
        "synced",
        "cache",
        "forward",
    )

    def __init__(self) -> None:
        self.computed: Any = None
        self.update_count = 0
        self.in_update = False
        self.in_compute = False
        self.synced = False
        self.cache: dict[str, StateValue] | None = None
        self.forward = False


class _Host(Protocol):
    """What the wrappers read from the metric."""

    _rt: Runtime
    enable_grad: bool
    sync_on_compute: bool
    dist_sync_on_step: bool
    compute_with_cache: bool

    def sync_context(self, *, should_sync: bool) -> AbstractContextManager[None]: ...


def wrap_update(fn: Callable[..., None]) -> Callable[..., None]:
    """Count the call, drop the cached result and run ``fn`` under ``no_grad`` (unless asked)."""

    @functools.wraps(fn)
    def update(self: _Host, *args: Any, **kwargs: Any) -> None:
        rt = self._rt
        if rt.in_update:
            fn(self, *args, **kwargs)
            return
        rt.computed = None
        rt.update_count += 1
        rt.in_update = True
        try:
            if self.enable_grad:
                fn(self, *args, **kwargs)
            else:
                with torch.no_grad():
                    fn(self, *args, **kwargs)
        finally:
            rt.in_update = False

    update.__wrapped_update__ = True  # type: ignore[attr-defined]
    return update


def wrap_compute(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Return the cached result, or run ``fn`` on the synchronised states and cache it."""

    @functools.wraps(fn)
    def compute(self: _Host) -> Any:
        rt = self._rt
        if rt.in_compute:
            return fn(self)
        if rt.computed is not None and not rt.forward:
            return rt.computed
        should_sync = self.dist_sync_on_step if rt.forward else self.sync_on_compute
        rt.in_compute = True
        try:
            with self.sync_context(should_sync=should_sync):
                value = fn(self)
        finally:
            rt.in_compute = False
        if not rt.forward and self.compute_with_cache:
            rt.computed = value
        return value

    compute.__wrapped_compute__ = True  # type: ignore[attr-defined]
    return compute


def merge_state(glob: StateValue, batch: StateValue, kind: Reduction, count: int) -> StateValue:
    """Merge the accumulated state with the state of one batch (used by ``forward``)."""
    if kind == "cat":
        return list(glob) + list(batch)
    assert isinstance(glob, Tensor) and isinstance(batch, Tensor)
    if kind == "sum":
        return glob + batch
    if kind == "max":
        return torch.maximum(glob, batch)
    if kind == "min":
        return torch.minimum(glob, batch)
    return (glob * count + batch) / (count + 1)  # mean
