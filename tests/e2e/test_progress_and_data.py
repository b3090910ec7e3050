"""Progress on a terminal vs log lines; DataLoader settings pass through; seeded runs repeat."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CLIResult, cli_env


def _run_on_terminal(args: list[str], cwd: Path, timeout: float = 120) -> str:
    """Run with stdout on a pseudo-terminal; return what the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=cli_env(), stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.kill() if proc.poll() is None else None
    proc.wait(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_redraws_on_a_terminal(tmp_path: Path) -> None:
    shown = _run_on_terminal([sys.executable, "-m", "declarative_train", "trainer.max_epochs=2", "logger=none",
                              "callbacks.progress_bar.refresh_rate=5"], tmp_path)
    assert "\repoch 0 | batch 5/20 | step 5 | loss" in shown
    assert "it/s" in shown
    assert "epoch 1 done in" in shown


def test_progress_logs_plain_lines_when_not_a_terminal(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("trainer.max_epochs=2", "logger=none")
    assert result.returncode == 0
    assert "\r" not in result.stdout
    (run_dir,) = result.run_dirs()
    log = (run_dir / "train.log").read_text()
    assert "epoch 0 done in" in log and "epoch 1 done in" in log


def test_dataloader_workers_and_seeded_repeatability(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    args = ["trainer.max_epochs=2", "logger=none", "data.num_workers=2", "data.persistent_workers=true",
            "trainer.deterministic=true", "seed=7"]
    first = run_cli(*args, cwd=tmp_path)
    second = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = (json.loads((d / "results.json").read_text()) for d in first.run_dirs())
    assert a["val"] == b["val"] and a["test"] == b["test"]
