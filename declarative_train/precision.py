"""Numeric precision in one place: autocast, GradScaler, and parameter/input dtypes.

``32``: plain float32. ``64``: model and float inputs in float64. ``16-mixed``: float16 autocast
with a GradScaler. ``bf16-mixed``: bfloat16 autocast (no scaler needed). ``bf16-true``: model and
float inputs in bfloat16, no autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from declarative_train.utils.text import not_one_of
from declarative_train.utils.tree import map_tensors

PRECISION_MODES = ("32", "64", "16-mixed", "bf16-mixed", "bf16-true")
_NULL_CONTEXT = contextlib.nullcontext()


class Precision:
    """The precision plugin the executor calls around forward, backward and optimizer steps.

    ``mode`` is one of :data:`PRECISION_MODES`; anything else raises ``ValueError``.
    """

    def __init__(self, mode: str = "32", device_type: str = "cpu") -> None:
        if mode not in PRECISION_MODES:
            raise ValueError(f"precision: {not_one_of(mode, PRECISION_MODES)}")
        self.mode = mode
        self.device_type = device_type
        self._param_dtype = {"64": torch.float64, "bf16-true": torch.bfloat16}.get(mode)
        self._autocast_dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(mode)
        self.scaler: torch.amp.GradScaler | None = None
        if mode == "16-mixed" and device_type in ("cuda", "cpu"):
            self.scaler = torch.amp.GradScaler(device_type)

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """Cast parameters for the ``64`` and ``bf16-true`` modes."""
        return module.to(self._param_dtype) if self._param_dtype else module

    def convert_input(self, batch: Any) -> Any:
        """Cast floating-point inputs for the ``64`` and ``bf16-true`` modes (else unchanged)."""
        if self._param_dtype is None:
            return batch
        dtype = self._param_dtype
        return map_tensors(batch, lambda t: t.to(dtype) if t.is_floating_point() else t)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context for the forward pass (a shared null context when not mixed)."""
        if self._autocast_dtype is None:
            return _NULL_CONTEXT
        return torch.autocast(self.device_type, dtype=self._autocast_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward, scaling the loss under a GradScaler."""
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Unscale gradients in place before clipping."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def optimizer_step(
        self, optimizer: torch.optim.Optimizer, step: Callable[[torch.optim.Optimizer], None]
    ) -> None:
        """Run ``step(optimizer)``; the scaler skips it when gradients are not finite."""
        if self.scaler is None:
            step(optimizer)
            return
        self.scaler.step(optimizer)  # calls optimizer.step() unless an inf/NaN was found
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The GradScaler's state (empty without one)."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the GradScaler's state."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
