"""Lightning's flags with Lightning's meanings: for each, the counts a small run must give.

The data: 60 training samples in batches of 10 (6 batches an epoch), 20 for validation (2
batches), 20 for test. Each expectation is derived from Lightning's documented semantics
(Trainer flags, ModelCheckpoint, EarlyStopping); docs/lightning.md lists where we differ on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train import Classification, Event, Executor, TrainingContext
from declarative_train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from declarative_train.data import Synthetic
from declarative_train.errors import SettingsError
from declarative_train.models import Linear


class Record(Callback):
    """Optimizer steps, validations (epoch, batch in epoch, step), test and train batches seen."""

    def __init__(self) -> None:
        self.steps = 0
        self.validations: list[tuple[int, int, int]] = []
        self.val_batches: list[int] = []
        self.tests = 0

    def attach(self, context: TrainingContext) -> None:
        self.listen(context, Event.STEP_END, self._step)
        self.listen(context, Event.EVAL_END, self._evaluated)

    def _step(self, context: TrainingContext) -> None:
        self.steps += 1

    def _evaluated(self, context: TrainingContext) -> None:
        state = context.state
        if state.stage == "val":
            self.validations.append((state.epoch, state.batch_idx, state.global_step))
        else:
            self.tests += 1


class Logged:
    """A logger that keeps the steps at which each name was written."""

    def __init__(self) -> None:
        self.steps: dict[str, list[int]] = {}

    def setup(self) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name in metrics:
            self.steps.setdefault(name, []).append(step)

    def log_text(self, tag: str, text: str) -> None: ...

    def finalize(self) -> None: ...


class CountingTask(Classification):
    """Counts the batches each stage runs."""

    def __init__(self) -> None:
        super().__init__(Linear(4, 2), torch.nn.CrossEntropyLoss())
        self.batches = {"train": 0, "val": 0, "test": 0}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.batches["train"] += 1
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        self.batches["val"] += 1
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> Any:
        self.batches["test"] += 1
        return super().validation_step(batch, batch_idx)


def _run(callbacks: dict[str, Any] | None = None, test: bool = False, loggers: list[Any] = (), **settings: Any,
         ) -> tuple[Executor, Record, CountingTask]:
    torch.manual_seed(0)
    data = Synthetic(num_samples=100, num_features=4, num_classes=2, batch_size=10, val_fraction=0.2,
                     test_fraction=0.2)
    record = Record()
    task = CountingTask()
    ex = Executor(task=task, data=data, optimizer=partial(torch.optim.SGD, lr=0.1),
                  callbacks={"record": record, **(callbacks or {})}, loggers=list(loggers), **settings)
    ex.fit()
    if test:
        ex.test(None)
    return ex, record, task


def test_max_epochs() -> None:
    ex, record, task = _run(max_epochs=3)
    assert (record.steps, ex.state.epochs_run, task.batches["train"]) == (18, 3, 18)
    assert record.validations == [(0, 6, 6), (1, 6, 12), (2, 6, 18)]  # at each epoch's end


def test_max_steps_cuts_an_epoch_short_and_it_counts() -> None:
    ex, record, _ = _run(max_epochs=10, max_steps=8)
    assert (record.steps, ex.state.epochs_run) == (8, 2)  # 6 steps of epoch 1, 2 of epoch 2
    assert "max_steps=8 reached" in ex.state.stop_reason


@pytest.mark.parametrize("limit,per_epoch", [(4, 4), (0.5, 3), (1.0, 6)])
def test_limit_train_batches(limit: float, per_epoch: int) -> None:
    _, record, task = _run(max_epochs=2, limit_train_batches=limit)
    assert (record.steps, task.batches["train"]) == (2 * per_epoch, 2 * per_epoch)


@pytest.mark.parametrize("limit,batches,validations", [(1, 1, 2), (0.5, 1, 2), (0, 0, 0)])
def test_limit_val_batches(limit: float, batches: int, validations: int) -> None:
    _, record, task = _run(max_epochs=2, limit_val_batches=limit)
    assert (len(record.validations), task.batches["val"]) == (validations, validations * batches)


def test_limit_test_batches() -> None:
    _, record, task = _run(max_epochs=1, limit_test_batches=1, test=True)
    assert (record.tests, task.batches["test"]) == (1, 1)


def test_overfit_batches_trains_and_validates_on_the_same_batches() -> None:
    ex, record, task = _run(max_epochs=2, overfit_batches=2)
    assert (record.steps, task.batches["val"]) == (4, 4)  # 2 batches an epoch; validation on the same 2
    first = [batch[1].tolist() for batch, _ in zip(ex.loaders.get("train"), range(2))]
    again = [batch[1].tolist() for batch, _ in zip(ex.loaders.get("train"), range(2))]
    assert first == again  # unshuffled


@pytest.mark.parametrize("setting,batches", [(True, 1), (3, 3)])
def test_fast_dev_run(setting: bool | int, batches: int, tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path))
    logged = Logged()
    ex, record, task = _run({"ckpt": saver}, test=True, loggers=[logged], max_epochs=5, fast_dev_run=setting)
    # N batches of each stage (validation and test hold 2 batches), N steps, one epoch.
    assert task.batches == {"train": batches, "val": min(batches, 2), "test": min(batches, 2)}
    assert (record.steps, ex.state.epochs_run) == (batches, 1)
    assert list(tmp_path.iterdir()) == [] and logged.steps == {}  # no checkpoints, no logging


@pytest.mark.parametrize("interval,at", [(0.5, [3, 6]), (2, [2, 4, 6]), (0.25, [1, 2, 3, 4, 5, 6])])
def test_val_check_interval_within_an_epoch(interval: float, at: list[int]) -> None:
    _, record, _ = _run(max_epochs=2, val_check_interval=interval)
    # int(6 * 0.25) = 1: every batch, as Lightning's val_check_batch
    assert [batch for epoch, batch, _ in record.validations if epoch == 0] == at
    assert len(record.validations) == 2 * len(at)


def test_check_val_every_n_epoch() -> None:
    _, record, _ = _run(max_epochs=4, check_val_every_n_epoch=2)
    assert [epoch for epoch, _, _ in record.validations] == [1, 3]


def test_validation_counted_across_epochs() -> None:
    _, record, _ = _run(max_epochs=3, check_val_every_n_epoch=None, val_check_interval=4)
    # 18 batches in all: after global batches 4, 8, 12, 16 = (epoch, batch in epoch) (0,4) (1,2) (1,6) (2,4)
    assert [(epoch, batch) for epoch, batch, _ in record.validations] == [(0, 4), (1, 2), (1, 6), (2, 4)]


def test_an_interval_longer_than_an_epoch_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"val_check_interval: 8 training batches is more than an epoch holds \(6\)"):
        _run(max_epochs=1, val_check_interval=8)
    with pytest.raises(ValueError, match="check_val_every_n_epoch: null .* needs an int val_check_interval"):
        _run(max_epochs=1, check_val_every_n_epoch=None, val_check_interval=0.5)


def test_accumulate_grad_batches_steps_at_the_epoch_end_too() -> None:
    _, record, task = _run(max_epochs=3, accumulate_grad_batches=4)
    assert (record.steps, task.batches["train"]) == (6, 18)  # ceil(6 / 4) = 2 steps an epoch


def test_log_every_n_steps() -> None:
    logged = Logged()
    _run(loggers=[logged], max_epochs=3, log_every_n_steps=4)
    assert logged.steps["train/loss"] == [4, 8, 12, 16]
    assert logged.steps["val/loss"] == [6, 12, 18]  # validation values at the step they follow


def test_early_stopping_patience_counts_validations() -> None:
    never_better = EarlyStopping(monitor="val/loss", mode="min", patience=2, min_delta=1e9)
    ex, record, _ = _run({"stop": never_better}, max_epochs=10)
    # The first validation sets the best; two more without improvement stop fit at epoch 3's end.
    assert (len(record.validations), ex.state.epochs_run) == (3, 3)
    assert ex.state.stop_reason.startswith("EarlyStopping")


def test_early_stop_at_a_mid_epoch_validation_counts_the_epoch_entered() -> None:
    never_better = EarlyStopping(monitor="val/loss", mode="min", patience=0, min_delta=1e9)
    ex, record, _ = _run({"stop": never_better}, max_epochs=10, val_check_interval=2)
    # patience=0: the second validation (after batch 4 of epoch 1) does not improve and stops fit.
    assert record.validations[-1][:2] == (0, 4) and ex.state.epochs_run == 1


def test_every_n_train_steps_without_monitor(tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), save_top_k=-1, every_n_epochs=0, every_n_train_steps=5)
    _run({"ckpt": saver}, max_epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch=0-step=5.ckpt", "epoch=1-step=10.ckpt", "epoch=2-step=15.ckpt", "last.ckpt"]


def test_save_top_k_keeps_the_best(tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/loss", save_top_k=2)
    _run({"ckpt": saver}, max_epochs=4)
    assert len(saver.best_k_models) == 2 and len(list(tmp_path.glob("epoch=*.ckpt"))) == 2
    assert saver.best_model_score == min(saver.best_k_models.values())


def test_results_json_counts_an_epoch_cut_short(compose_cfg: Callable[..., Any]) -> None:
    from declarative_train.jobs.train import run_job

    cfg = compose_cfg(["trainer.max_steps=25", "trainer.limit_val_batches=0", "logger=none", "test=false",
                       "~callbacks.progress_bar"])
    assert run_job(cfg)["epochs"] == 2  # 20 steps an epoch: the 25th is in the second epoch
