"""The :class:`Metric` base class: state registration, accumulation, caching and sync."""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from declarative_train.metrics import sync as _sync
from declarative_train.metrics.sync import Reduction, StateValue

_KINDS = ("sum", "mean", "max", "min", "cat")


class _Runtime:
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


def _wrap_update(fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def update(self: Metric, *args: Any, **kwargs: Any) -> None:
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


def _wrap_compute(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def compute(self: Metric) -> Any:
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


class Metric(nn.Module):
    """Base class of every stateful metric.

    Subclasses register their states with :meth:`add_state` in ``__init__`` and implement
    ``update(*args, **kwargs)`` (accumulate a batch into the states) and ``compute()`` (turn the
    states into the result). The base class wraps both: ``compute`` is cached until the next
    ``update``/``reset`` and, when ``torch.distributed`` is initialised, synchronises the states
    of all ranks first (``sync_on_compute=True``). ``forward`` returns the value on the batch
    alone while also accumulating it. States move with ``.to(device)`` and persistent states
    are part of ``state_dict``.

    Args:
        sync_on_compute: synchronise states across processes in ``compute``.
        dist_sync_on_step: also synchronise for the batch value returned by ``forward``.
        process_group: the process group to synchronise over (default: the world).
        compute_with_cache: cache the result of ``compute`` until the next update.
        enable_grad: run ``update`` with autograd enabled (default: under ``no_grad``).

    Example:
        >>> import torch
        >>> class Total(Metric):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.add_state("total", torch.tensor(0.0), reduce="sum")
        ...     def update(self, x):
        ...         self.total += x.sum()
        ...     def compute(self):
        ...         return self.total
        >>> m = Total()
        >>> m(torch.tensor([1.0, 2.0]))
        tensor(3.)
        >>> m.update(torch.tensor([4.0]))
        >>> m.compute()
        tensor(7.)
    """

    full_state_update: bool = False
    _rt: _Runtime

    def __init__(
        self,
        *,
        sync_on_compute: bool = True,
        dist_sync_on_step: bool = False,
        process_group: Any = None,
        compute_with_cache: bool = True,
        enable_grad: bool = False,
    ) -> None:
        super().__init__()
        self.sync_on_compute = sync_on_compute
        self.dist_sync_on_step = dist_sync_on_step
        self.process_group = process_group
        self.compute_with_cache = compute_with_cache
        self.enable_grad = enable_grad
        self._rt = _Runtime()
        self._defaults: dict[str, StateValue] = {}
        self._reductions: dict[str, Reduction] = {}
        self._persistent: dict[str, bool] = {}
        self._device = torch.device("cpu")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        upd = cls.__dict__.get("update")
        if upd is not None and not getattr(upd, "__wrapped_update__", False):
            cls.update = _wrap_update(upd)  # type: ignore[method-assign]
        comp = cls.__dict__.get("compute")
        if comp is not None and not getattr(comp, "__wrapped_compute__", False):
            cls.compute = _wrap_compute(comp)  # type: ignore[method-assign]

    # ------------------------------------------------------------------ states
    def add_state(
        self,
        name: str,
        default: Tensor | list[Tensor],
        reduce: Reduction = "sum",
        persistent: bool = False,
    ) -> None:
        """Register a state.

        Args:
            name: attribute name of the state.
            default: a tensor, or an empty list for states that grow (``reduce="cat"``).
            reduce: how ranks combine: ``"sum"|"mean"|"max"|"min"|"cat"``, a callable that takes
                the states of all ranks stacked along a new dim 0, or ``None`` (no sync).
            persistent: whether the state is part of ``state_dict``.
        """
        if isinstance(default, list):
            if default:
                raise ValueError(f"add_state: list default for {name!r} must be empty")
            if reduce != "cat":
                raise ValueError(f"add_state: list state {name!r} needs reduce='cat'")
        elif not isinstance(default, Tensor):
            raise ValueError(f"add_state: default for {name!r} must be a tensor or []")
        if not (reduce is None or callable(reduce) or reduce in _KINDS):
            raise ValueError(
                f"add_state: reduce for {name!r} must be one of {_KINDS} or a callable"
            )
        if name in self._defaults or hasattr(type(self), name):
            raise ValueError(f"add_state: name {name!r} is already taken")
        default = [] if isinstance(default, list) else default.detach().clone().to(self._device)
        self._defaults[name] = default
        self._reductions[name] = reduce
        self._persistent[name] = persistent
        setattr(self, name, [] if isinstance(default, list) else default.clone())

    def persistent(self, mode: bool = False) -> None:
        """Make all states (not) part of ``state_dict``."""
        for name in self._persistent:
            self._persistent[name] = mode

    def metric_state(self) -> dict[str, StateValue]:
        """The current ``{name: value}`` of every state."""
        return {name: getattr(self, name) for name in self._defaults}

    def _set_states(self, states: dict[str, StateValue]) -> None:
        for name, value in states.items():
            setattr(self, name, value)

    @property
    def update_count(self) -> int:
        """Number of ``update`` calls since the last reset."""
        return self._rt.update_count

    @property
    def device(self) -> torch.device:
        """The device the states live on."""
        return self._device

    # ------------------------------------------------------------------ api
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Accumulate one batch into the states."""
        raise NotImplementedError

    def compute(self) -> Any:
        """Compute the result from the (synchronised) states."""
        raise NotImplementedError

    def reset(self) -> None:
        """Reset the states to their defaults and drop the cached result."""
        rt = self._rt
        rt.computed = None
        rt.update_count = 0
        rt.synced = False
        rt.cache = None
        for name, default in self._defaults.items():
            if isinstance(default, list):
                setattr(self, name, [])
            else:
                setattr(self, name, default.detach().clone().to(self._device))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Accumulate the batch and return the metric on this batch alone."""
        mergeable = all(r in _KINDS for r in self._reductions.values())
        if self.full_state_update or not mergeable or self.dist_sync_on_step:
            return self._forward_full(*args, **kwargs)
        return self._forward_merge(*args, **kwargs)

    def _batch_value(self) -> Any:
        rt = self._rt
        rt.forward = True
        try:
            return self.compute()
        finally:
            rt.forward = False

    def _forward_full(self, *args: Any, **kwargs: Any) -> Any:
        self.update(*args, **kwargs)
        count, saved = self._rt.update_count, self.metric_state()
        self.reset()
        self.update(*args, **kwargs)
        value = self._batch_value()
        self._set_states(saved)
        self._rt.update_count = count
        self._rt.computed = None
        return value

    def _forward_merge(self, *args: Any, **kwargs: Any) -> Any:
        count, saved = self._rt.update_count, self.metric_state()
        self.reset()
        self.update(*args, **kwargs)
        value = self._batch_value()
        batch = self.metric_state()
        merged = {n: _merge(saved[n], batch[n], self._reductions[n], count) for n in saved}
        self._set_states(merged)
        self._rt.update_count = count + 1
        self._rt.computed = None
        return value

    # ------------------------------------------------------------------ sync
    def _sync_entry(self) -> tuple[dict[str, StateValue], dict[str, Reduction]]:
        return self.metric_state(), self._reductions

    def _enter_synced(self, states: dict[str, StateValue]) -> None:
        self._rt.cache = self.metric_state()
        self._set_states(states)
        self._rt.synced = True

    def sync(self, process_group: Any = None, should_sync: bool = True) -> None:
        """Replace local states by the states of all ranks combined (see :meth:`unsync`)."""
        if self._rt.synced:
            raise RuntimeError(f"{type(self).__name__} is already synced")
        if not should_sync or not _sync.distributed_available():
            return
        group = process_group if process_group is not None else self.process_group
        synced = _sync.sync_states([self._sync_entry()], group, self._device)[0]
        self._enter_synced(synced)

    def unsync(self, should_unsync: bool = True) -> None:
        """Restore the local states saved by :meth:`sync`."""
        if not should_unsync:
            return
        if not self._rt.synced or self._rt.cache is None:
            raise RuntimeError(f"{type(self).__name__} is not synced")
        self._set_states(self._rt.cache)
        self._rt.cache = None
        self._rt.synced = False

    @contextmanager
    def sync_context(
        self, process_group: Any = None, should_sync: bool = True, should_unsync: bool = True
    ) -> Generator[None, None, None]:
        """Context in which the states are synchronised across ranks (no-op when not needed)."""
        was_synced = self._rt.synced
        do_sync = should_sync and not was_synced and _sync.distributed_available()
        if do_sync:
            self.sync(process_group)
        try:
            yield
        finally:
            if do_sync and self._rt.synced:
                self.unsync(should_unsync)

    # ------------------------------------------------------------------ module plumbing
    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Metric:
        super()._apply(fn, recurse)
        self._device = fn(torch.zeros(0, device=self._device)).device
        for name, default in self._defaults.items():
            value = getattr(self, name)
            if isinstance(value, Tensor):
                setattr(self, name, fn(value))
            else:
                setattr(self, name, [fn(v) for v in value])
            if isinstance(default, Tensor):
                self._defaults[name] = fn(default)
        if isinstance(self._rt.computed, Tensor):
            self._rt.computed = fn(self._rt.computed)
        return self

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, persistent in self._persistent.items():
            if persistent:
                value = getattr(self, name)
                if isinstance(value, Tensor):
                    destination[prefix + name] = value if keep_vars else value.detach()
                else:
                    destination[prefix + name] = [v if keep_vars else v.detach() for v in value]

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for name in self._defaults:
            key = prefix + name
            if key in state_dict:
                value = state_dict.pop(key)
                if isinstance(value, Tensor):
                    value = value.to(self._device)
                else:
                    value = [v.to(self._device) for v in value]
                setattr(self, name, value)
            elif strict and self._persistent[name]:
                missing_keys.append(key)
        self._rt.computed = None
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _merge(glob: StateValue, batch: StateValue, kind: Reduction, count: int) -> StateValue:
    """Merge the global state with the state of one batch (used by ``forward``)."""
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
