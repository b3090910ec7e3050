"""``dtrain accelerator=tpu`` end to end on XLA's CPU device: accuracy, compilations, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import cli_env

pytestmark = pytest.mark.xla


def _dtrain(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cli_env(), "PJRT_DEVICE": "CPU"}
    return subprocess.run([sys.executable, "-m", "declarative_train", "accelerator=tpu", "logger=none", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def xla_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    cwd = tmp_path_factory.mktemp("xla_run")
    proc = _dtrain(cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (cwd / "outputs" / "runs").iterdir()
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_default_experiment_reaches_the_accuracy_bar_on_xla(xla_run: tuple[Path, dict]) -> None:
    run_dir, results = xla_run
    assert results["status"] == "ok"
    assert results["test"]["test/acc"] >= 0.95
    assert "accelerator: tpu (xla:0" in (run_dir / "train.log").read_text()


def test_compilations_stay_bounded(xla_run: tuple[Path, dict]) -> None:
    _, results = xla_run
    # 400 steps, 20 validations and a test: a handful of graphs (full and last partial batch of
    # train, val and test), not one per step.
    assert 0 < results["compilations"] <= 20, results["compilations"]


def test_checkpoint_saved_on_xla_loads_on_cpu(xla_run: tuple[Path, dict]) -> None:
    run_dir, _ = xla_run
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())
    assert ckpt["loop"]["global_step"] == 400


def test_resume_from_an_xla_checkpoint(xla_run: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, _ = xla_run
    proc = _dtrain(tmp_path, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=22")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (resumed,) = (tmp_path / "outputs" / "runs").iterdir()
    results = json.loads((resumed / "results.json").read_text())
    assert results["epochs"] == 22 and results["global_step"] == 440
    assert results["test"]["test/acc"] >= 0.95
