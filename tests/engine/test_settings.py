"""The engine's settings reject what the command line rejects, with the same messages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from declarative_train import Executor, Precision, TrainerSettings
from declarative_train.config.validate import _check_trainer
from declarative_train.engine.settings import settings_problems


def test_a_misspelt_clip_algorithm_is_rejected_with_the_allowed_values(make_executor: Callable[..., Executor]) -> None:
    with pytest.raises(ValueError, match=r"gradient_clip_algorithm: 'nrom' is not one of norm, value\. Did you mean 'norm'\?"):
        make_executor(gradient_clip_algorithm="nrom")


def test_an_unknown_precision_is_rejected_with_the_allowed_values(make_executor: Callable[..., Executor]) -> None:
    with pytest.raises(ValueError, match=r"precision: 'fp8' is not one of 32, 64, 16-mixed, bf16-mixed, bf16-true"):
        make_executor(precision="fp8")
    with pytest.raises(ValueError, match="precision: 'fp8'"):
        Precision("fp8")


@pytest.mark.parametrize("settings,setting,message", [
    ({"limit_train_batches": 1.5}, "limit_train_batches", "a float is a fraction and must be in [0, 1], got 1.5"),
    ({"limit_val_batches": -1}, "limit_val_batches", "must be >= 0, got -1"),
    ({"overfit_batches": "all"}, "overfit_batches", "must be an int (count) or a float (fraction), got 'all'"),
    ({"val_check_interval": 0}, "val_check_interval", "must be a positive int or a float in (0, 1], got 0"),
    ({"accumulate_grad_batches": 0}, "accumulate_grad_batches", "must be >= 1, got 0"),
    ({"gradient_clip_val": -0.5}, "gradient_clip_val", "must be > 0 (or null), got -0.5"),
    ({"fast_dev_run": -2}, "fast_dev_run", "must be true, false or a count >= 0, got -2"),
    ({"max_epochs": -1, "max_steps": -1}, "max_epochs", "max_epochs and max_steps cannot both be -1"),
])
def test_python_api_and_config_give_the_same_message(settings: dict[str, object], setting: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        TrainerSettings(**settings)  # type: ignore[arg-type]
    assert str(info.value) == f"{setting}: {message}"
    issues = _check_trainer({"trainer": {**_defaults(), **settings}})
    assert [str(issue) for issue in issues] == [f"trainer.{setting}: {message}"]


def test_every_problem_is_reported_at_once() -> None:
    problems = settings_problems({**_defaults(), "check_val_every_n_epoch": 0, "log_every_n_steps": 0})
    assert [name for name, _ in problems] == ["check_val_every_n_epoch", "log_every_n_steps"]
    with pytest.raises(ValueError, match="check_val_every_n_epoch: must be >= 1, got 0; log_every_n_steps"):
        TrainerSettings(check_val_every_n_epoch=0, log_every_n_steps=0)


def test_valid_settings_pass_unchanged() -> None:
    settings = TrainerSettings(limit_train_batches=3, val_check_interval=0.25, fast_dev_run=True, gradient_clip_val=1)
    assert settings.limit_train_batches == 3 and settings.val_check_interval == 0.25


def _defaults() -> dict[str, object]:
    import attrs

    return attrs.asdict(TrainerSettings())
