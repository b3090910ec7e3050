"""State registration of a metric and its ``nn.Module`` plumbing (device moves, ``state_dict``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from declarative_train.metrics._runtime import KINDS, Runtime
from declarative_train.metrics.sync import Reduction, StateValue


class StateModule(nn.Module):
    """Holds the states registered with :meth:`add_state`; base of :class:`.Metric`.

    States are plain attributes (tensors, or lists of tensors for ``cat`` states), not buffers:
    they follow ``.to(device)`` through :meth:`_apply`, and the persistent ones are written to
    and read from ``state_dict`` by the two hooks below.
    """

    _rt: Runtime

    def __init__(self) -> None:
        super().__init__()
        self._rt = Runtime()
        self._defaults: dict[str, StateValue] = {}
        self._reductions: dict[str, Reduction] = {}
        self._persistent: dict[str, bool] = {}
        self._device = torch.device("cpu")

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
        if not (reduce is None or callable(reduce) or reduce in KINDS):
            raise ValueError(f"add_state: reduce for {name!r} must be one of {KINDS} or a callable")
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

    def _reset_states(self) -> None:
        for name, default in self._defaults.items():
            if isinstance(default, list):
                setattr(self, name, [])
            else:
                setattr(self, name, default.detach().clone().to(self._device))

    @property
    def device(self) -> torch.device:
        """The device the states live on."""
        return self._device

    # ------------------------------------------------------------------ module plumbing
    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> StateModule:
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
