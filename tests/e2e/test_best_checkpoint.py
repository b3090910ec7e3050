"""After fit, test runs on the best checkpoint, not the last weights, and dtrain-eval agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env


def _eval(cwd: Path, ckpt: str, out: Path) -> dict[str, float]:
    proc = subprocess.run([str(Path(sys.executable).parent / "dtrain-eval"), f"ckpt_path={ckpt}", f"hydra.run.dir={out}"],
                          cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "results.json").read_text())["test"]


def test_a_run_that_gets_worse_is_tested_on_its_best_checkpoint(tmp_path: Path) -> None:
    # Adam at lr 1e-3 for three epochs, then lr 3 (StepLR gamma 3000): later epochs are worse.
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "declarative_train", "trainer.max_epochs=6", "scheduler=step", "scheduler.step_size=3",
         "scheduler.gamma=3000", "logger=none", "~callbacks.progress_bar", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((run_dir / "results.json").read_text())
    best = results["best_model_path"]
    assert Path(best).name.startswith(("epoch=0-", "epoch=1-", "epoch=2-"))  # before the LR jump
    assert results["val"]["val/acc"] < results["best_model_score"] - 0.1  # the last epoch is clearly worse
    assert results["tested_ckpt_path"] == best
    evaluated_best = _eval(tmp_path, best, tmp_path / "eval_best")
    evaluated_last = _eval(tmp_path, str(run_dir / "checkpoints" / "last.ckpt"), tmp_path / "eval_last")
    assert evaluated_best == pytest.approx(results["test"], rel=1e-6)
    assert evaluated_last["test/acc"] < results["test"]["test/acc"] - 0.1
