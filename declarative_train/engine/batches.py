"""How many batches each stage runs: limits, fractions, ``fast_dev_run``, ``overfit_batches``."""

from __future__ import annotations

from typing import Any


def limit_batches(available: int, limit: Any) -> int:
    """Batches to run out of ``available``: an int limit is a count, a float a fraction."""
    if isinstance(limit, bool):
        raise TypeError("a batch limit must be an int or a float")
    if isinstance(limit, int):
        return min(available, limit)
    count = int(available * float(limit))
    return max(count, 1) if limit > 0 and available > 0 else count


def fast_dev_run_batches(setting: Any) -> int:
    """Batches per stage under ``fast_dev_run`` (0: off)."""
    if isinstance(setting, bool):
        return 1 if setting else 0
    return int(setting)


def validation_interval(num_train_batches: int, val_check_interval: Any) -> int:
    """Validate after every N training batches (N = epoch length for 1.0)."""
    if isinstance(val_check_interval, float):
        return max(1, int(num_train_batches * val_check_interval))
    return int(val_check_interval)
