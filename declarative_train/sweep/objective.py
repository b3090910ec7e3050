"""The value a sweep optimises: its name, the job's value, and whether higher is better."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from declarative_train.config.schema import DIRECTIONS


def normalize_direction(direction: str) -> str:
    """``maximize``/``max`` -> ``max``; ``minimize``/``min`` -> ``min``."""
    try:
        return DIRECTIONS[direction.lower()]
    except KeyError:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}") from None


def objective_entry(
    name: str | None, direction: str | None, metrics: Mapping[str, float], checkpoint: Any,
    higher_is_better: Callable[[str], bool | None],
) -> dict[str, Any] | None:
    """``{"name", "value", "mode"}`` for ``results.json``; ``None`` when nothing names a metric.

    ``name`` is ``optimized_metric`` (``None``: the monitor of ``checkpoint``, the run's checkpoint
    callback). The value is the checkpoint's best score when it monitors that metric (the
    checkpoint that gets tested), otherwise the metric's final value. The mode is ``direction``
    when given, else the checkpoint's mode when it monitors the metric, else ``max`` or ``min``
    from ``higher_is_better(name)`` (the metric's own direction; ``min`` when unknown).
    """
    monitor = getattr(checkpoint, "monitor", None)
    name = name or monitor
    if not name:
        return None
    value = metrics.get(name)
    watched = checkpoint is not None and monitor == name
    if watched and checkpoint.best_model_score is not None:
        value = checkpoint.best_model_score
    if direction:
        mode = normalize_direction(direction)
    elif watched and getattr(checkpoint, "mode", None) in ("min", "max"):
        mode = checkpoint.mode
    else:
        mode = "max" if higher_is_better(name) else "min"
    return {"name": name, "value": None if value is None else float(value), "mode": mode}
