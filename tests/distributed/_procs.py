"""Helpers to start ``dtrain``/``torchrun`` processes and inspect the run folders they leave."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import cli_env

#: 2 CPU workers, a few batches, no TensorBoard: the quick DDP job of these tests.
DDP = ["accelerator=cpu", "accelerator.devices=2", "accelerator.strategy=ddp"]
SMALL = ["debug=limit", "logger=none"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``args`` (a python -m command line without the interpreter) in ``cwd``."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env={**cli_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    """Wait for ``proc``; kill it (and fail loudly) after ``timeout`` seconds."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish in {timeout} s:\n{err[-3000:]}") from None
    return proc.returncode, out, err


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 240) -> tuple[int, str, str]:
    return finish(start(args, cwd, env), timeout)


def run_dirs(cwd: Path) -> list[Path]:
    root = cwd / "outputs" / "runs"
    return sorted(root.iterdir()) if root.is_dir() else []


def only_run_dir(cwd: Path) -> Path:
    dirs = run_dirs(cwd)
    assert len(dirs) == 1, f"expected one run folder, found {dirs}"
    return dirs[0]


def results(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "results.json").read_text()))


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)

