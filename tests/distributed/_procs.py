"""Helpers to start ``dtrain``/``torchrun`` processes and inspect the run folders they leave."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import cli_env

#: 2 CPU workers, a few batches, no TensorBoard: the quick DDP job of these tests.
DDP = ["accelerator=cpu", "accelerator.devices=2", "accelerator.strategy=ddp"]
SMALL = ["debug=limit", "logger=none"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Output files of the processes :func:`start` started, by pid.
_OUTPUT: dict[int, tuple[IO[str], IO[str]]] = {}


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``args`` (a python -m command line without the interpreter) in ``cwd``.

    Output goes to files, not pipes: a process the command leaves behind (a DataLoader worker of
    a killed rank, say) would hold a pipe open and make reading it wait forever. The command runs
    in a session of its own, so :func:`stop` can take down what it started.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    out, err = tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - live as long as the process
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env={**cli_env(), **(env or {})},
                            stdout=out, stderr=err, text=True, start_new_session=True)
    _OUTPUT[proc.pid] = (out, err)
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` and everything left in its session."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    """Wait for ``proc``; kill it (and fail loudly) after ``timeout`` seconds. Returns code, stdout, stderr."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise AssertionError(f"{proc.args} did not finish in {timeout} s:\n{output(proc)[1][-3000:]}") from None
    code = proc.returncode
    stop(proc)  # anything the command left running in its session
    out, err = output(proc)
    return code, out, err


def output(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What ``proc`` has written to stdout and stderr so far."""
    texts = []
    for handle in _OUTPUT[proc.pid]:
        handle.flush()
        handle.seek(0)
        texts.append(handle.read())
    return texts[0], texts[1]


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


def spawn_ranks(entry: Any, world: int, out: Path, timeout: float, what: str) -> list[dict[str, Any]]:
    """``entry(rank, world, port, out)`` in ``world`` spawned processes; each rank's ``out/rank<r>.pt``.

    Fails the test (killing the ranks) if they do not finish within ``timeout`` seconds.
    """
    import torch
    import torch.multiprocessing as mp

    ctx = mp.start_processes(entry, args=(world, free_port(), str(out)), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for process in ctx.processes:
                process.kill()
            pytest.fail(f"the {what} ranks did not finish within {timeout:.0f} s")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]
