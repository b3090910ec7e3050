"""The callback protocol."""

from __future__ import annotations

import math
from typing import Any


class Callback:
    """Subscribes handlers in :meth:`attach`; may carry state that checkpoints save.

    Set ``runs_in_fast_dev_run = False`` on callbacks that ``fast_dev_run`` switches off.
    """

    runs_in_fast_dev_run: bool = True

    def attach(self, executor: Any) -> None:
        """Subscribe to ``executor.events``."""

    def state_dict(self) -> dict[str, Any]:
        """State to keep in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta
