"""Sweep building blocks: objective, hparams from overrides, run names, histograms."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from declarative_train import Classification, Executor
from declarative_train.callbacks import ModelCheckpoint, ParameterHistograms
from declarative_train.data import Digits
from declarative_train.errors import JobSkipped
from declarative_train.jobs.hparams import overrides_to_hparams
from declarative_train.loggers import TensorBoardLogger
from declarative_train.models import MLP
from declarative_train.sweep.job import prepare_job
from declarative_train.sweep.naming import MAX_NAME_LENGTH, is_plumbing, run_name
from declarative_train.sweep.objective import normalize_direction, objective_entry


def _checkpoint(monitor: str, mode: str, best: float | None) -> ModelCheckpoint:
    checkpoint = ModelCheckpoint(monitor=monitor, mode=mode)
    checkpoint.best_model_score = best
    return checkpoint


def _direction(name: str) -> bool | None:
    """As ``Executor.higher_is_better`` with acc and f1 configured (and ``hamming`` a distance)."""
    return {"loss": False, "acc": True, "f1": True, "hamming": False}.get(name.rpartition("/")[2])


def test_objective_is_the_best_checkpoint_score_of_the_monitor() -> None:
    metrics = {"val/acc": 0.8, "val/loss": 0.5}
    entry = objective_entry(None, None, metrics, _checkpoint("val/acc", "max", 0.9), _direction)
    assert entry == {"name": "val/acc", "value": 0.9, "mode": "max"}


def test_objective_named_by_optimized_metric_takes_its_final_value_and_the_metric_direction() -> None:
    checkpoint = _checkpoint("val/acc", "max", 0.9)
    assert objective_entry("val/loss", None, {"val/loss": 0.5}, checkpoint, _direction) == {
        "name": "val/loss", "value": 0.5, "mode": "min"}
    assert objective_entry("test/f1", None, {"test/f1": 0.7}, checkpoint, _direction)["mode"] == "max"
    # The direction comes from the metric, not from its name: a distance is minimised.
    assert objective_entry("val/hamming", None, {"val/hamming": 0.1}, None, _direction)["mode"] == "min"
    assert objective_entry("train/loss", None, {}, None, _direction)["mode"] == "min"
    assert objective_entry("val/acc", "minimize", {"val/acc": 0.8}, None, _direction)["mode"] == "min"
    assert objective_entry(None, None, {"val/acc": 0.8}, None, _direction) is None


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


@pytest.fixture
def sweep_job(tmp_path: Path, compose_cfg: Any) -> Callable[..., Any]:
    """A composed config whose run folder is job 0 of a sweep folder."""
    def make(*overrides: str) -> Any:
        cfg = compose_cfg(list(overrides))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "sweep" / "0")
        (tmp_path / "sweep" / "0" / "checkpoints").mkdir(parents=True, exist_ok=True)
        return cfg
    return make


def test_prepare_job_reuses_finished_results_and_resumes_the_rest(sweep_job: Callable[..., Any], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sweep, job = tmp_path / "sweep", tmp_path / "sweep" / "0"
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    (job / "checkpoints").mkdir(parents=True)
    (job / "results.json").write_text(json.dumps({"status": "ok", "objective": {"value": 0.9}}))
    assert prepare_job(sweep_job("sweep.resume=true"), sweep) == {"status": "ok", "objective": {"value": 0.9}}

    (job / "results.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    (job / "checkpoints" / "last.ckpt").write_bytes(b"")
    cfg = sweep_job("sweep.resume=true")
    assert prepare_job(cfg, sweep) is None
    assert cfg.ckpt_path == str(job / "checkpoints" / "last.ckpt")
    assert not (job / "results.json").exists()  # the stale failure no longer hides the running job

    cfg = sweep_job()
    assert prepare_job(cfg, sweep) is None and cfg.ckpt_path is None  # a plain re-run starts over
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert prepare_job(cfg, sweep) is None and cfg.ckpt_path == str(job / "checkpoints" / "last.ckpt")


def test_prepare_job_skips_after_a_failure_unless_keep_going(sweep_job: Callable[..., Any], tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "1").mkdir(parents=True)
    (sweep / "1" / "results.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    assert prepare_job(sweep_job(), sweep) is None
    with pytest.raises(JobSkipped, match="job 1 failed and sweep.keep_going=false"):
        prepare_job(sweep_job("sweep.keep_going=false"), sweep)
    assert json.loads((sweep / "0" / "results.json").read_text())["status"] == "skipped"
