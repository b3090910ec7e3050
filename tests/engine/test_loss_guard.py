"""A non-finite loss stops fit naming its step, and no checkpoint is written after it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train import Classification, Executor
from declarative_train.callbacks import ModelCheckpoint
from declarative_train.checkpoint import read
from declarative_train.errors import NonFiniteLossError
from declarative_train.models import MLP


class NaNAt(Classification):
    """Returns a NaN (or inf) loss at the ``bad``-th training step."""

    def __init__(self, bad: int, value: float = float("nan")) -> None:
        super().__init__(MLP(64, [32], 10), torch.nn.CrossEntropyLoss())
        self.bad, self.value, self.calls = bad, value, 0

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self.calls += 1
        return loss * self.value if self.calls == self.bad else loss


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_its_step_and_keeps_the_last_good_checkpoint(
    make_executor: Callable[..., Executor], tmp_path: Path, value: float
) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), every_n_train_steps=5, every_n_epochs=0)
    ex = make_executor(task=NaNAt(12, value), callbacks={"model_checkpoint": saver}, max_epochs=1, log_every_n_steps=50)
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \((nan|inf)\) at step 12 \(epoch 0, batch 12\)"):
        ex.fit()
    # The save due at step 15 found the bad loss first (the check runs before every write).
    assert read(str(tmp_path / "last.ckpt"))["loop"]["global_step"] == 10
    assert ex.state.global_step == 15


def test_checks_happen_on_logging_steps(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(task=NaNAt(3), max_epochs=1, log_every_n_steps=4)
    with pytest.raises(NonFiniteLossError, match="at step 3 "):
        ex.fit()
    assert ex.state.global_step == 4  # found at the next logging step, with no per-step sync


def test_gradient_accumulation_micro_batches_are_covered(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(task=NaNAt(4), max_epochs=1, accumulate_grad_batches=3, log_every_n_steps=50)
    with pytest.raises(NonFiniteLossError, match=r"at step 2 \(epoch 0, batch 4\)"):  # batches 4-6 make step 2
        ex.fit()


def test_under_a_grad_scaler_the_step_is_skipped_and_training_goes_on(
    make_executor: Callable[..., Executor], caplog: pytest.LogCaptureFixture
) -> None:
    ex = make_executor(task=NaNAt(3), max_epochs=1, precision="16-mixed", log_every_n_steps=5)
    scale = ex.precision.scaler.get_scale() if ex.precision.scaler else None
    with caplog.at_level(logging.WARNING):
        ex.fit()
    assert ex.state.global_step == 20
    assert "non-finite training loss at steps [3]: the GradScaler skipped them" in caplog.text
    assert ex.precision.scaler is not None and ex.precision.scaler.get_scale() < scale
    assert all(torch.isfinite(p).all() for p in ex.task.parameters())
    assert torch.isfinite(torch.tensor(ex.state.metrics["train/loss"]))
