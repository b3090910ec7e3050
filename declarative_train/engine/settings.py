"""The loop's settings, validated where they are defined.

:class:`TrainerSettings` is what the executor runs by. The config layer mirrors it as the
``trainer`` schema and reports :func:`settings_problems` with key paths, so the Python API and
the command line reject exactly the same values with the same messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from declarative_train.utils.text import not_one_of

GRADIENT_CLIP_ALGORITHMS = ("norm", "value")


def _class_names(value: Any) -> Any:
    """A list of class names as a tuple (settings are frozen); anything else is left to the check."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


@attrs.frozen(kw_only=True)
class TrainerSettings:
    """Loop settings; names and meanings follow Lightning's Trainer where one exists.

    Raises ``ValueError`` naming every setting that is out of range, with the allowed values.
    """

    max_epochs: int = 10
    """Stop after this many epochs (-1: no epoch limit, then ``max_steps`` must be set)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: no step limit)."""
    limit_train_batches: int | float = 1.0
    """Train batches per epoch: an int is a count, a float in [0, 1] a fraction."""
    limit_val_batches: int | float = 1.0
    """Validation batches per run: int count or float fraction."""
    limit_test_batches: int | float = 1.0
    """Test batches per run: int count or float fraction."""
    overfit_batches: int | float = 0.0
    """Train (and validate) on the same first N batches every epoch, unshuffled. 0 disables."""
    fast_dev_run: bool | int = False
    """True or N: run N (1) batches of train, val and test once, without checkpoints or logs."""
    val_check_interval: int | float = 1.0
    """Validate every fraction of an epoch (float) or every N train batches (int)."""
    check_val_every_n_epoch: int | None = 1
    """Validate in every N-th epoch; ``None``: every ``val_check_interval`` (an int) training
    batches counted across epochs."""
    accumulate_grad_batches: int = 1
    """Sum gradients of N batches before each optimizer step."""
    gradient_clip_val: float | None = None
    """Clip gradients to this value (``None``: no clipping)."""
    gradient_clip_algorithm: str = "norm"
    """``norm`` (total 2-norm) or ``value`` (element-wise)."""
    log_every_n_steps: int = 50
    """Log ``train/loss`` every N optimizer steps."""
    deterministic: bool = False
    """Use deterministic algorithms (``torch.use_deterministic_algorithms``)."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""
    # The default is a list so that the config mirror's default is one (the converter makes a tuple).
    activation_checkpointing: tuple[str, ...] = attrs.field(default=[], converter=_class_names)
    """Class names of submodules recomputed in backward instead of keeping their activations."""

    def __attrs_post_init__(self) -> None:
        problems = settings_problems(attrs.asdict(self))
        if problems:
            raise ValueError("; ".join(f"{name}: {message}" for name, message in problems))


def settings_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(setting, message)`` for every value in ``values`` that :class:`TrainerSettings` rejects."""
    problems = [(name, message) for name, check in _CHECKS.items() if name in values
                for message in [check(values[name])] if message]
    if values.get("max_epochs") == -1 and values.get("max_steps") == -1:
        problems.append(("max_epochs", "max_epochs and max_steps cannot both be -1"))
    if "check_val_every_n_epoch" in values and values["check_val_every_n_epoch"] is None \
            and not _is_int(values.get("val_check_interval")):
        problems.append(("check_val_every_n_epoch", "null (validation counted across epochs) needs an int "
                                                    f"val_check_interval, got {values.get('val_check_interval')!r}"))
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count_or_fraction(value: Any) -> str | None:
    if _is_int(value):
        return None if value >= 0 else f"must be >= 0, got {value}"
    if isinstance(value, float) and not isinstance(value, bool):
        return None if 0.0 <= value <= 1.0 else f"a float is a fraction and must be in [0, 1], got {value}"
    return f"must be an int (count) or a float (fraction), got {value!r}"


def _at_least(minimum: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return f"must be an int, got {value!r}"
        return None if value >= minimum else f"must be >= {minimum}, got {value}"
    return check


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _fast_dev_run(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    return None if _is_int(value) and value >= 0 else f"must be true, false or a count >= 0, got {value!r}"


def _val_check_interval(value: Any) -> str | None:
    if _is_int(value):
        return None if value >= 1 else f"must be a positive int or a float in (0, 1], got {value}"
    if isinstance(value, float):
        return None if 0.0 < value <= 1.0 else f"a float must be in (0, 1], got {value}"
    return f"must be a positive int or a float in (0, 1], got {value!r}"


def _clip_val(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return f"must be > 0 (or null), got {value!r}"
    return None


def _class_name_list(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and all(isinstance(name, str) and name for name in value):
        return None
    return f"must be a list of module class names (e.g. [Block]), got {value!r}"


def _clip_algorithm(value: Any) -> str | None:
    return None if value in GRADIENT_CLIP_ALGORITHMS else not_one_of(value, GRADIENT_CLIP_ALGORITHMS)


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "max_epochs": _at_least(-1),
    "max_steps": _at_least(-1),
    "limit_train_batches": _count_or_fraction,
    "limit_val_batches": _count_or_fraction,
    "limit_test_batches": _count_or_fraction,
    "overfit_batches": _count_or_fraction,
    "fast_dev_run": _fast_dev_run,
    "val_check_interval": _val_check_interval,
    "check_val_every_n_epoch": lambda value: None if value is None else _at_least(1)(value),
    "accumulate_grad_batches": _at_least(1),
    "gradient_clip_val": _clip_val,
    "gradient_clip_algorithm": _clip_algorithm,
    "log_every_n_steps": _at_least(1),
    "deterministic": _flag,
    "compile": _flag,
    "activation_checkpointing": _class_name_list,
}
