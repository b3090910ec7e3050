"""The value a sweep optimises: its name, the job's value, and whether higher is better."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Spellings of a direction (Optuna's and the callbacks') -> ``max``/``min``.
DIRECTIONS = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}


def normalize_direction(direction: str) -> str:
    """``maximize``/``max`` -> ``max``; ``minimize``/``min`` -> ``min``."""
    try:
        return DIRECTIONS[direction.lower()]
    except KeyError:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}") from None


def objective_entry(
    name: str | None, direction: str | None, metrics: Mapping[str, float], callbacks: Iterable[Any],
) -> dict[str, Any] | None:
    """``{"name", "value", "mode"}`` for ``results.json``; ``None`` when nothing names a metric.

    ``name`` is ``optimized_metric`` (``None``: the checkpoint monitor). The value is the
    checkpoint's best score when it monitors that metric (the checkpoint that gets tested),
    otherwise the metric's final value. The mode is ``direction`` when given, else the mode of a
    callback monitoring the metric, else ``min`` for losses and errors and ``max`` otherwise.
    """
    callbacks = [cb for cb in callbacks if getattr(cb, "monitor", None)]
    checkpoint = next((cb for cb in callbacks if hasattr(cb, "best_model_score")), None)
    name = name or getattr(checkpoint, "monitor", None)
    if not name:
        return None
    value = metrics.get(name)
    if checkpoint is not None and checkpoint.monitor == name and checkpoint.best_model_score is not None:
        value = checkpoint.best_model_score
    if direction:
        mode = normalize_direction(direction)
    else:
        watcher = next((cb for cb in callbacks if cb.monitor == name and hasattr(cb, "mode")), None)
        mode = watcher.mode if watcher is not None else guess_mode(name)
    return {"name": name, "value": None if value is None else float(value), "mode": mode}


def guess_mode(name: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else (accuracy, F1, AUROC, ...)."""
    lowered = name.lower()
    return "min" if any(word in lowered for word in ("loss", "error", "mse", "mae")) else "max"
