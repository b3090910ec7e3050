"""Damaged or foreign checkpoints: one clear message naming the file, exit 1, nothing overwritten."""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from declarative_train.checkpoint import file as ckpt_file
from tests.conftest import cli_env

LIMIT = ["debug=limit", "logger=none", "~callbacks.progress_bar"]


def _run(cwd: Path, *args: str, command: str = "dtrain") -> subprocess.CompletedProcess[str]:
    """``dtrain`` or ``dtrain-eval`` (the console scripts next to this interpreter)."""
    return subprocess.run([str(Path(sys.executable).parent / command), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("good") / "run"
    proc = _run(run_dir.parent, *LIMIT, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return run_dir


def _damaged(good: Path, folder: Path, kind: str) -> Path:
    """A copy of the good run's last.ckpt with one kind of damage."""
    data = (good / "checkpoints" / "last.ckpt").read_bytes()
    rng = random.Random(kind)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "last.ckpt"
    if kind == "truncated":
        path.write_bytes(data[:rng.randrange(1, len(data))])
    elif kind == "flipped":
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
    elif kind == "wrong-version":
        checkpoint = torch.load(good / "checkpoints" / "last.ckpt", weights_only=True)
        ckpt_file.write({**checkpoint, "format_version": 99, "package_version": "9.0"}, [path])
    return path


# How the checkpoint is damaged (or None: the good one, into another model), overrides, message.
CASES = [
    pytest.param("truncated", [], r"(is truncated|has no integrity footer|is corrupt)", id="truncated"),
    pytest.param("flipped", [], r"is corrupt: its bytes do not match its integrity footer", id="flipped"),
    pytest.param("wrong-version", [], r"has format version 99 \(declarative_train 9.0\); this version reads format 2",
                 id="wrong-version"),
    pytest.param(None, ["model.net.hidden_sizes=[32,64]"],
                 r"does not fit the model: shape mismatches \[net.0.bias: checkpoint \(128,\) vs model \(32,\)",
                 id="other-model"),
    pytest.param(None, ["model=cnn"], r"does not fit the model: missing keys \[.+\] \(\d+\); unexpected keys",
                 id="other-architecture", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("kind,overrides,message", CASES)
def test_resuming_from_a_bad_checkpoint_fails_clearly_and_changes_nothing(
    good_run: Path, tmp_path: Path, kind: str | None, overrides: list[str], message: str
) -> None:
    path = _damaged(good_run, tmp_path / "bad", kind) if kind else good_run / "checkpoints" / "last.ckpt"
    before = _digests(good_run), _digests(path.parent)
    proc = _run(tmp_path, *LIMIT, *overrides, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'resumed'}")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0], proc.stderr
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in proc.stderr
    assert (_digests(good_run), _digests(path.parent)) == before
    assert not (tmp_path / "resumed" / "checkpoints").exists()


def test_evaluating_a_damaged_checkpoint_fails_clearly(good_run: Path, tmp_path: Path) -> None:
    path = _damaged(good_run, tmp_path / "bad", "flipped")
    proc = _run(tmp_path, f"ckpt_path={path}", command="dtrain-eval")
    assert proc.returncode == 1, proc.stderr
    assert f"error: checkpoint {path} is corrupt" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_auto_with_a_damaged_last_ckpt_fails_and_keeps_it(good_run: Path, tmp_path: Path) -> None:
    path = _damaged(good_run, tmp_path / "job" / "checkpoints", "truncated")
    before = path.read_bytes()
    proc = _run(tmp_path, *LIMIT, "resume=auto", f"hydra.run.dir={tmp_path / 'job'}")
    assert proc.returncode == 1, proc.stderr
    assert f"checkpoint {path}" in proc.stderr
    assert path.read_bytes() == before
