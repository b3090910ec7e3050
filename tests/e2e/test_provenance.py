"""``meta.json``: the command, code and environment of a run, in its folder and in its checkpoints.

Real ``dtrain`` processes in a real git repository (committed, then with uncommitted changes) and
outside any repository; ``dtrain-eval`` warns when its code is not the checkpoint's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from declarative_train.jobs.provenance import DIFF_FILE, META_FILE, git_state
from tests.conftest import cli_env

SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "test=false",
         "logger=none", "~callbacks.progress_bar"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def _run(cwd: Path, *args: str, command: str = "dtrain") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / command), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with one commit and, after it, an uncommitted change and an untracked file."""
    repo = tmp_path_factory.mktemp("provenance") / "project"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train_notes.txt").write_text("first\n")
    _git(repo, "add", "train_notes.txt")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "train_notes.txt").write_text("first\nchanged\n")
    (repo / "new_file.py").write_text("x = 1\n")
    return repo


def test_a_run_in_a_dirty_checkout_names_its_commit_and_keeps_the_diff(repo: Path) -> None:
    run_dir = repo / "outputs" / "run"
    proc = _run(repo, *SHORT, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((run_dir / META_FILE).read_text())
    commit = _git(repo, "rev-parse", "HEAD")
    assert meta["git"]["commit"] == commit and meta["git"]["dirty"] is True
    assert meta["git"]["repository"] == str(repo) and "new_file.py" in meta["git"]["untracked"]
    assert "+changed" in (run_dir / DIFF_FILE).read_text()
    assert meta["command"].startswith("dtrain trainer.max_epochs=1")
    assert meta["torch"] == torch.__version__ and meta["python"] == ".".join(map(str, sys.version_info[:3]))
    assert meta["status"] == "ok" and meta["finished_at"] >= meta["started_at"]
    assert meta["packages"]["torch"] == torch.__version__ and "hydra-core" in meta["packages"]
    assert meta["accelerator"]["name"] == "cpu" and meta["earlier_attempts"] == []
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["meta"]["git"] == meta["git"] and saved["meta"]["command"] == meta["command"]


def test_a_run_outside_any_repository_says_so(tmp_path: Path) -> None:
    assert git_state(tmp_path)["repository"] is None  # the test's own folder is outside any checkout
    run_dir = tmp_path / "run"
    proc = _run(tmp_path, *SHORT, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((run_dir / META_FILE).read_text())
    assert meta["git"] == {"repository": None, "note": "not inside a git repository (or git is not installed)"}
    assert not (run_dir / DIFF_FILE).exists()


def test_a_resumed_run_keeps_the_earlier_attempt(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert _run(tmp_path, *SHORT, f"hydra.run.dir={run_dir}").returncode == 0
    first = json.loads((run_dir / META_FILE).read_text())
    proc = _run(tmp_path, *SHORT, "trainer.max_epochs=2", "resume=auto", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((run_dir / META_FILE).read_text())
    assert [a["started_at"] for a in meta["earlier_attempts"]] == [first["started_at"]]
    assert meta["earlier_attempts"][0]["status"] == "ok" and "resume=auto" in meta["command"]


def test_dtrain_eval_warns_when_the_code_is_not_the_checkpoints(repo: Path) -> None:
    run_dir = repo / "outputs" / "run"
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        assert _run(repo, *SHORT, f"hydra.run.dir={run_dir}").returncode == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "second")
    proc = _run(repo, f"ckpt_path={ckpt}", f"hydra.run.dir={repo / 'outputs' / 'eval'}", command="dtrain-eval")
    assert proc.returncode == 0, proc.stderr
    trained_at = json.loads((run_dir / META_FILE).read_text())["git"]["commit"]
    logged = proc.stdout + proc.stderr  # the log's console lines
    assert f"the code may differ from the code that trained {ckpt}: it was trained at commit {trained_at[:12]}" in logged
    assert "it was trained with uncommitted changes" in logged
