"""``dtrain tune=lr_find``, ``optimizer.lr=auto`` and ``data.batch_size=auto`` end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, open_dict

from declarative_train.config.validate import validate_config
from declarative_train.jobs.train import run_job
from declarative_train.jobs.tune import lr_find_job
from tests.conftest import CLIResult

#: A short range test: enough steps to see the loss fall on digits.
SHORT_TEST = ["tune.num_steps=60", "tune.min_lr=1e-5", "tune.max_lr=1"]
SHORT_RUN = ["trainer.max_epochs=2", "logger=none"]


def _run(compose_cfg: Callable[..., DictConfig], folder: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = compose_cfg(overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)
    validate_config(cfg)
    return run_job(cfg)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


def test_lr_find_writes_the_curve_and_the_suggestion_and_does_not_train(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("tune=lr_find", *SHORT_TEST)
    assert result.returncode == 0, result.stderr
    (run_dir,) = result.run_dirs()
    found = json.loads((run_dir / "lr_find.json").read_text())
    suggestion = found["suggestion"]
    assert suggestion["rule"] == "steepest" and 1e-5 < suggestion["lr"] < 1
    assert f"suggested lr: {suggestion['lr']:.4g}" in result.stdout
    assert len(found["lrs"]) == len(found["losses"]) == len(found["smoothed_losses"]) == found["num_steps_run"]
    assert found["lrs"][0] == pytest.approx(1e-5) and found["batch_size"] == 64
    assert not (run_dir / "results.json").exists() and not (run_dir / "checkpoints").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "lr_find.png not written" in (run_dir / "train.log").read_text()
    else:
        assert (run_dir / "lr_find.png").stat().st_size > 0


def test_lr_auto_is_the_run_started_with_the_suggested_lr_bit_for_bit(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    auto = _run(compose_cfg, tmp_path / "auto", ["optimizer.lr=auto", *SHORT_TEST, *SHORT_RUN])
    lr = auto["tuned"]["lr"]
    explicit = _run(compose_cfg, tmp_path / "explicit", [f"optimizer.lr={lr!r}", *SHORT_RUN])
    assert "tuned" not in explicit
    assert auto["val"] == explicit["val"] and auto["test"] == explicit["test"]
    a, b = _weights(tmp_path / "auto"), _weights(tmp_path / "explicit")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stored = torch.load(tmp_path / "auto" / "checkpoints" / "last.ckpt", weights_only=False)["config"]
    assert stored["optimizer"]["lr"] == lr
    resumed = _run(compose_cfg, tmp_path / "auto", ["optimizer.lr=auto", "resume=auto", "trainer.max_epochs=3",
                                                     "logger=none", "tune.min_lr=1", "tune.max_lr=2"])
    assert resumed["tuned"] == {"lr": lr} and resumed["epochs"] == 3  # from the checkpoint, not tuned again


def test_batch_size_auto_picks_less_under_a_lower_memory_budget(
        compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    quick = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1", "logger=none", "data.batch_size=auto", "tune.batch_size_mode=power"]
    low = _run(compose_cfg, tmp_path / "low", [*quick, "tune.max_memory_gb=0.0005"])
    high = _run(compose_cfg, tmp_path / "high", [*quick, "tune.max_memory_gb=1"])
    assert 32 <= low["tuned"]["batch_size"] < high["tuned"]["batch_size"]
    # The train split has 1257 samples: the search stops there; a start above it starts there.
    clamped = _run(compose_cfg, tmp_path / "clamped", [*quick, "tune.batch_size_start=4096"])
    assert high["tuned"]["batch_size"] == clamped["tuned"]["batch_size"] == 1257


def test_bad_range_and_a_model_that_diverges_at_once_exit_2(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("tune=lr_find", "tune.min_lr=1", "tune.max_lr=0.1")
    assert result.returncode == 2
    assert "tune.min_lr: must be < tune.max_lr" in result.stderr and "Traceback" not in result.stderr
    diverging = run_cli("tune=lr_find", "optimizer=sgd", "tune.min_lr=1000", "tune.max_lr=1e9")
    assert diverging.returncode == 2, diverging.stderr
    assert "tune.min_lr: the learning-rate range test diverged at once" in diverging.stderr
    assert "the lowest smoothed loss was" in diverging.stderr and "Traceback" not in diverging.stderr
    assert not any((run_dir / "lr_find.json").exists() for run_dir in diverging.run_dirs())


def test_auto_values_pass_validation_and_dry_run(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("optimizer.lr=auto", "data.batch_size=auto", "dry_run=true")
    assert result.returncode == 0, result.stderr
    assert "Object graph" in result.stdout
    wrong = run_cli("optimizer.lr=fast", "dry_run=true")
    assert wrong.returncode == 2 and "optimizer.lr" in wrong.stderr


@pytest.mark.slow
def test_the_suggested_lr_trains_as_well_as_the_default(compose_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = compose_cfg(["tune=lr_find"])
    found = lr_find_job(cfg)
    ten_epochs = ["trainer.max_epochs=10", "logger=none"]
    suggested = _run(compose_cfg, tmp_path / "suggested", [f"optimizer.lr={found['suggestion']['lr']!r}", *ten_epochs])
    default = _run(compose_cfg, tmp_path / "default", ten_epochs)
    assert suggested["test"]["test/acc"] >= default["test"]["test/acc"] - 0.01
