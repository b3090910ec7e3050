"""Progress bars on a terminal vs plain log lines; DataLoader settings pass through; seeded runs repeat."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

from tests.callbacks.test_progress_bar import screen
from tests.conftest import CLIResult, cli_env


def _run_on_terminal(args: list[str], cwd: Path, timeout: float = 120) -> str:
    """Run with stdout on a 100-column pseudo-terminal; return all that the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
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
    return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")  # the terminal's newline mapping


TINY = ["trainer.max_epochs=2", "trainer.limit_train_batches=5", "logger=none"]


def test_progress_bars_on_a_terminal(tmp_path: Path) -> None:
    shown = _run_on_terminal([sys.executable, "-m", "declarative_train", *TINY], tmp_path)
    lines = screen(shown)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 0", "epoch 1"]
    last = epochs[-1]
    assert "100%" in last and "5/5" in last and "it/s" in last and "loss=" in last and "val/acc=" in last
    assert all(len(line) <= 100 for line in lines if line.startswith(("epoch", "val", "test")))
    assert any("model summary" in line for line in lines)  # logged during the first step, above the bar
    assert "results:" in lines[-1]  # the test bar was cleared


def test_progress_logs_plain_lines_when_not_a_terminal(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli(*TINY)
    assert result.returncode == 0
    for bar_mark in ("\r", "\x1b[", "%|", "it/s"):
        assert bar_mark not in result.stdout
    assert "epoch 1 done in" in result.stdout
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
