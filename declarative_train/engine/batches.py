"""How many batches each stage runs: limits, fractions, ``fast_dev_run``, ``overfit_batches``."""

from __future__ import annotations

from typing import Any

from declarative_train.errors import SettingsError


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


def planned_steps(num_train_batches: int, settings: Any, fast_dev_run: int = 0) -> int | None:
    """Optimizer steps fit takes with ``settings`` (``TrainerSettings``), ``None`` when unbounded."""
    per_epoch = -(-num_train_batches // settings.accumulate_grad_batches)
    epochs = 1 if fast_dev_run else settings.max_epochs
    by_epochs = per_epoch * epochs if epochs >= 0 else None
    if settings.max_steps >= 0:
        return min(settings.max_steps, by_epochs) if by_epochs is not None else settings.max_steps
    return by_epochs


def validation_interval(num_train_batches: int, val_check_interval: Any) -> int:
    """Validate after every N training batches (N = epoch length for 1.0)."""
    if isinstance(val_check_interval, float):
        return max(1, int(num_train_batches * val_check_interval))
    return int(val_check_interval)


def check_validation_interval(val_check_interval: Any, check_val_every_n_epoch: int | None, num_train_batches: int) -> None:
    """Refuse an int ``val_check_interval`` longer than an epoch (it would never validate).

    Counting across epochs (``check_val_every_n_epoch=None``) allows any interval, as in Lightning.
    """
    if isinstance(val_check_interval, bool) or not isinstance(val_check_interval, int):
        return
    if check_val_every_n_epoch is not None and val_check_interval > num_train_batches:
        raise SettingsError("val_check_interval", (
            f"{val_check_interval} training batches is more than an epoch holds ({num_train_batches}), so "
            "validation would never run; lower it, or set check_val_every_n_epoch=null to count batches "
            "across epochs (limit_val_batches=0 turns validation off)"))
