"""Run real ``dtrain`` processes for the resume tests, and compare what they leave behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import cli_env

REPO = Path(__file__).resolve().parents[2]

#: A short deterministic run with mid-epoch validation and mid-epoch checkpoints: digits has 20
#: train batches per epoch, so validation runs after batches 10 and 20 and checkpoints are
#: written every 7 steps as well as at epoch ends.
RUN = ["trainer.max_epochs=3", "trainer.val_check_interval=0.5", "trainer.log_every_n_steps=1",
       "trainer.deterministic=true", "callbacks.model_checkpoint.every_n_train_steps=7",
       "callbacks.model_checkpoint.save_top_k=2", "callbacks=[default,early_stopping]",
       "callbacks.early_stopping.patience=20", "~callbacks.progress_bar", "~callbacks.lr_monitor"]
KILLER = ["user_packages=[tests]", "+callbacks.killer._target_=tests.e2e.killer.Killer"]


def dtrain(run_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``dtrain`` writing into ``run_dir``; ``tests`` importable for the killer callback."""
    env = cli_env()
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "declarative_train", *RUN, f"hydra.run.dir={run_dir}", *args],
                          cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=timeout)


def start(run_dir: Path, *args: str) -> subprocess.Popen[str]:
    """``dtrain`` in the background, for signals sent from outside."""
    env = cli_env()
    env["PYTHONPATH"] = str(REPO)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "declarative_train", *RUN, f"hydra.run.dir={run_dir}", *args],
                            cwd=run_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> bool:
    """Wait until ``path`` exists; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{path} did not appear within {timeout}s")
        time.sleep(0.02)
    return True


def killed_run(run_dir: Path, *killer_args: str) -> subprocess.CompletedProcess[str]:
    """A run its own killer callback signals; the caller checks the exit status."""
    return dtrain(run_dir, *KILLER, *(f"+callbacks.killer.{a}" for a in killer_args))


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def train_losses(run_dir: Path) -> dict[int, float]:
    """``train/loss`` by step from the run's TensorBoard files."""
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    if "train/loss" not in events.Tags()["scalars"]:
        return {}  # nothing was trained
    return {e.step: e.value for e in events.Scalars("train/loss")}


def assert_same_training_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Model, optimizer, loop position and EarlyStopping's counters equal bit for bit."""
    assert a["loop"]["global_step"] == b["loop"]["global_step"]
    assert a["callbacks"]["early_stopping"] == b["callbacks"]["early_stopping"]
    assert a["metrics"] == b["metrics"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for pid, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][pid][name]), (pid, name)
