"""Shared fixtures: compose configs through real Hydra, and run the real ``dtrain`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from declarative_train.cli import _register, config_dir
from declarative_train.config.overrides import normalize_overrides

#: Overrides that shrink a run to a few batches for tests.
QUICK = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "trainer.log_every_n_steps=1"]


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose ``train.yaml`` (or another primary config) with overrides, as ``dtrain`` would."""
    _register()

    def _compose(overrides: list[str] = (), config_name: str = "train") -> DictConfig:  # type: ignore[assignment]
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name, overrides=normalize_overrides(list(overrides)))
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


class CLIResult:
    """A finished ``dtrain`` process."""

    def __init__(self, proc: subprocess.CompletedProcess[str], cwd: Path) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.cwd = cwd

    def run_dirs(self) -> list[Path]:
        root = self.cwd / "outputs" / "runs"
        return sorted(root.iterdir()) if root.is_dir() else []

    def results(self) -> dict[str, Any]:
        (run_dir,) = self.run_dirs()
        return json.loads((run_dir / "results.json").read_text())


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CLIResult]:
    """Run ``python -m declarative_train`` (= ``dtrain``) in a fresh folder; return its result."""

    def _run(*args: str, module: str = "declarative_train", timeout: float = 300, cwd: Path | None = None) -> CLIResult:
        where = cwd or tmp_path
        proc = subprocess.run(
            [sys.executable, "-m", module, *args], cwd=where, env=cli_env(),
            capture_output=True, text=True, timeout=timeout,
        )
        return CLIResult(proc, where)

    return _run


def run_entry_point(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    entry: Callable[[], None], argv: list[str]) -> tuple[Any, str]:
    """A console entry point (``cli.eval_main``, ``cli.export_main``) run in this process.

    The same code as the command, without a new interpreter; returns its exit code (0 when it
    returns) and what it wrote to stderr.
    """
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # the CLI sets it for Hydra; restored after the test
    code: Any = 0
    try:
        entry()
    except SystemExit as exc:
        code = exc.code
    finally:
        GlobalHydra.instance().clear()
    return code, capsys.readouterr().err
