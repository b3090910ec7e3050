"""The :class:`Metric` base class: accumulation, caching, ``forward`` and sync.

State registration and the ``nn.Module`` plumbing live in :mod:`._states`, the wrappers of
``update``/``compute`` in :mod:`._runtime`.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable
from contextlib import contextmanager
from typing import Any, ClassVar, TypedDict

from torch import Tensor

from declarative_train.metrics import sync as _sync
from declarative_train.metrics._runtime import KINDS, merge_state, wrap_compute, wrap_update
from declarative_train.metrics._states import StateModule
from declarative_train.metrics.sync import Reduction, StateValue


class MetricOptions(TypedDict, total=False):
    """The keyword options of :class:`Metric`, accepted by every metric class."""

    sync_on_compute: bool
    dist_sync_on_step: bool
    process_group: Any
    compute_with_cache: bool
    enable_grad: bool


class Metric(StateModule):
    """Base class of every stateful metric.

    Subclasses register their states with :meth:`add_state` in ``__init__``, implement
    ``update(*args, **kwargs)`` (accumulate a batch into the states) and ``compute()`` (turn the
    states into the result), and set :attr:`higher_is_better`. The base class wraps both:
    ``compute`` is cached until the next ``update``/``reset`` and, when ``torch.distributed`` is
    initialised, synchronises the states of all ranks first (``sync_on_compute=True``).
    ``forward`` returns the value on the batch alone while also accumulating it. States move
    with ``.to(device)`` and persistent states are part of ``state_dict``.

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
    #: Whether a larger value is better (``True``), a smaller one (``False``), or neither
    #: (``None``: a curve, a matrix, counts). Checkpointing, early stopping and sweeps read it to
    #: choose between maximising and minimising; every shipped metric sets it.
    higher_is_better: ClassVar[bool | None] = None

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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        upd = cls.__dict__.get("update")
        if upd is not None and not getattr(upd, "__wrapped_update__", False):
            cls.update = wrap_update(upd)  # type: ignore[method-assign]
        comp = cls.__dict__.get("compute")
        if comp is not None and not getattr(comp, "__wrapped_compute__", False):
            cls.compute = wrap_compute(comp)  # type: ignore[method-assign]

    @property
    def update_count(self) -> int:
        """Number of ``update`` calls since the last reset."""
        return self._rt.update_count

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
        self._reset_states()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Accumulate the batch and return the metric on this batch alone."""
        mergeable = all(r in KINDS for r in self._reductions.values())
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
        merged = {n: merge_state(saved[n], batch[n], self._reductions[n], count) for n in saved}
        self._set_states(merged)
        self._rt.update_count = count + 1
        self._rt.computed = None
        return value

    # ------------------------------------------------------------------ compute groups
    def state_group(self) -> Hashable | None:
        """A key equal for metrics whose states the same updates leave equal (``None``: its own).

        :class:`~declarative_train.metrics.MetricCollection` updates one member of each group and
        gives the others copies of its states (TorchMetrics' compute groups): accuracy and F1 over
        the same confusion counts count each batch once.
        """
        return None

    def _copy_states_from(self, other: Metric) -> None:
        """Take the states of ``other`` (same :meth:`state_group`), as if updated the same way."""
        self._set_states({name: value.clone() if isinstance(value, Tensor) else list(value)
                          for name, value in other.metric_state().items()})
        self._rt.update_count = other._rt.update_count
        self._rt.computed = None

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
