"""``-m`` sweeps give one folder per job; ``dtrain-eval`` reproduces a run's test metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CLIResult, cli_env


def test_multirun_grid_runs_every_job_in_its_own_folder(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    result = run_cli("-m", "optimizer.lr=0.01,0.1", "model=mlp,cnn", "debug=limit", "logger=none")
    assert result.returncode == 0, result.stderr
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "ok"
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        seen.add(overrides)
        assert (job / "train.log").is_file()
    assert len(seen) == 4
    assert not (tmp_path / "outputs" / "runs").exists()


def _dtrain_eval() -> str:
    return str(Path(sys.executable).parent / "dtrain-eval")


def test_eval_reproduces_the_test_metrics_of_the_best_checkpoint(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    train = run_cli("trainer.max_epochs=3", "logger=none")
    assert train.returncode == 0, train.stderr
    results = train.results()
    assert "=" in Path(results["best_model_path"]).name  # epoch=E-step=S.ckpt needs no quoting
    (tmp_path / "eval").mkdir()
    proc = subprocess.run([_dtrain_eval(), f"ckpt_path={results['best_model_path']}"], cwd=tmp_path / "eval",
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (eval_dir,) = (tmp_path / "eval" / "outputs" / "runs").iterdir()
    evaluated = json.loads((eval_dir / "results.json").read_text())
    assert evaluated["test"] == pytest.approx(results["test"], rel=1e-6)


def test_eval_of_a_missing_checkpoint_exits_1(tmp_path: Path) -> None:
    proc = subprocess.run([_dtrain_eval(), f"ckpt_path={tmp_path / 'nope.ckpt'}"], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "nope.ckpt: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_eval_without_ckpt_path_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run([_dtrain_eval()], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "ckpt_path: missing mandatory value" in proc.stderr
