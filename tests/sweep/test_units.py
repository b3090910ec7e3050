"""Sweep building blocks: objective, hparams from overrides, run names, histograms."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from declarative_train import Classification, Executor
from declarative_train.callbacks import EarlyStopping, ModelCheckpoint, ParameterHistograms
from declarative_train.data import Digits
from declarative_train.loggers import TensorBoardLogger
from declarative_train.loggers.hparams import overrides_to_hparams
from declarative_train.models import MLP
from declarative_train.sweep.naming import MAX_NAME_LENGTH, is_plumbing, run_name
from declarative_train.sweep.objective import normalize_direction, objective_entry


def _checkpoint(monitor: str, mode: str, best: float | None) -> ModelCheckpoint:
    checkpoint = ModelCheckpoint(monitor=monitor, mode=mode)
    checkpoint.best_model_score = best
    return checkpoint


def test_objective_is_the_best_checkpoint_score_of_the_monitor() -> None:
    metrics = {"val/acc": 0.8, "val/loss": 0.5}
    entry = objective_entry(None, None, metrics, [_checkpoint("val/acc", "max", 0.9)])
    assert entry == {"name": "val/acc", "value": 0.9, "mode": "max"}


def test_objective_named_by_optimized_metric_takes_its_final_value_and_a_watcher_mode() -> None:
    callbacks = [_checkpoint("val/acc", "max", 0.9), EarlyStopping(monitor="val/loss", mode="min")]
    assert objective_entry("val/loss", None, {"val/loss": 0.5}, callbacks) == {"name": "val/loss", "value": 0.5, "mode": "min"}
    assert objective_entry("test/f1", None, {"test/f1": 0.7}, callbacks)["mode"] == "max"
    assert objective_entry("train/loss", None, {}, [])["mode"] == "min"
    assert objective_entry("val/acc", "minimize", {"val/acc": 0.8}, [])["mode"] == "min"
    assert objective_entry(None, None, {"val/acc": 0.8}, []) is None


def test_directions_accept_optuna_and_callback_spellings() -> None:
    assert [normalize_direction(d) for d in ("maximize", "MAX", "min", "minimize")] == ["max", "max", "min", "min"]
    with pytest.raises(ValueError, match="direction must be one of"):
        normalize_direction("up")


def test_overrides_become_typed_hparams() -> None:
    params = overrides_to_hparams(["optimizer.lr=1e-3", "model=cnn", "trainer.max_epochs=5", "+x.flag=true",
                                   "model.net.hidden_sizes=[128,64]"])
    assert params == {"optimizer.lr": 0.001, "model": "cnn", "trainer.max_epochs": 5, "x.flag": True,
                      "model.net.hidden_sizes": "[128,64]"}


def test_run_names_are_the_overrides_safe_for_folders() -> None:
    assert run_name(["optimizer.lr=0.01", "model=cnn"]) == "optimizer.lr=0.01,model=cnn"
    assert run_name(["optimized_metric=val/acc"]) == "optimized_metric=val_acc"
    long = run_name([f"k{i}=" + "v" * 20 for i in range(10)])
    assert len(long) == MAX_NAME_LENGTH and long != run_name([f"k{i}=" + "v" * 20 for i in range(9)] + ["k9=w"])
    assert is_plumbing("sweep.resume=true") and is_plumbing("hparams_search=digits_optuna")
    assert not is_plumbing("sweeps=3") and not is_plumbing("model=cnn")


def test_parameter_histograms_log_weights_and_first_step_gradients(tmp_path: Path) -> None:
    torch.manual_seed(0)
    logger = TensorBoardLogger(str(tmp_path / "tb"), name="lr=0.01")
    executor = Executor(
        task=Classification(MLP(64, [16], 10), torch.nn.CrossEntropyLoss()), data=Digits(batch_size=64),
        optimizer=partial(torch.optim.Adam, lr=1e-3), callbacks={"histograms": ParameterHistograms(every_n_epochs=2)},
        loggers=[logger], max_epochs=4, limit_train_batches=3, limit_val_batches=1,
    )
    executor.fit()
    logger.finalize()
    events = EventAccumulator(str(tmp_path / "tb" / "lr=0.01"), size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()["histograms"]
    names = [name for name, _ in executor.task.named_parameters()]
    assert set(tags) == {f"weights/{n}" for n in names} | {f"grads/{n}" for n in names}
    assert [e.step for e in events.Histograms(f"grads/{names[0]}")] == [6, 12]  # epochs 2 and 4, 3 steps each
    assert not executor.callbacks["histograms"]._hooks  # one-shot hooks are gone between logged epochs
