"""EarlyStopping: patience, min_delta, thresholds, non-finite values; its counters resume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from declarative_train import Executor
from declarative_train.callbacks import EarlyStopping, ModelCheckpoint
from declarative_train.metrics import Accuracy


def _fit(make: Callable[..., Executor], stopper: EarlyStopping, **kwargs: object) -> Executor:
    ex = make(callbacks={"early_stopping": stopper}, metrics={"acc": Accuracy(task="multiclass", num_classes=10)},
              **{"max_epochs": 8, **kwargs})
    ex.fit()
    return ex


def test_patience_counts_checks_without_improvement(make_executor: Callable[..., Executor]) -> None:
    ex = _fit(make_executor, EarlyStopping(monitor="val/loss", patience=2, min_delta=10.0))
    assert ex.state.epoch == 3  # epochs run: check 1 sets best; checks 2 and 3 do not beat it by 10
    assert "did not improve for 2 checks" in ex.state.stop_reason


def test_stopping_threshold(make_executor: Callable[..., Executor]) -> None:
    ex = _fit(make_executor, EarlyStopping(monitor="val/acc", mode="max", patience=100, stopping_threshold=0.5))
    assert "reached stopping_threshold 0.5" in ex.state.stop_reason
    assert ex.state.metrics["val/acc"] >= 0.5


def test_divergence_threshold(make_executor: Callable[..., Executor]) -> None:
    ex = _fit(make_executor, EarlyStopping(monitor="val/loss", patience=100, divergence_threshold=0.01))
    assert ex.state.epoch == 1 and "crossed divergence_threshold 0.01" in ex.state.stop_reason


def test_train_metrics_are_checked_at_epoch_ends(make_executor: Callable[..., Executor]) -> None:
    ex = _fit(make_executor, EarlyStopping(monitor="train/loss", patience=1, min_delta=10.0))
    assert ex.state.epoch == 2


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_stop_when_check_finite(value: float) -> None:
    assert "is not finite" in EarlyStopping(monitor="val/loss", mode="min")._stop_reason(value)
    assert EarlyStopping(monitor="val/loss", mode="min", check_finite=False)._stop_reason(value) == ""


def test_counters_resume(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor=None)
    first = make_executor(callbacks={"early_stopping": EarlyStopping(monitor="val/loss", patience=3, min_delta=10.0),
                                     "model_checkpoint": saver}, max_epochs=2)
    first.fit()
    resumed = EarlyStopping(monitor="val/loss", patience=3, min_delta=10.0)
    second = make_executor(callbacks={"early_stopping": resumed}, max_epochs=8)
    second.fit(ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.wait == 3
    assert second.state.epoch == 4  # two more checks without improvement, not three
