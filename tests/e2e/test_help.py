"""``dtrain --help`` speaks for the project and lists every config group with all its choices."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from declarative_train.cli import config_dir
from tests.conftest import CLIResult, cli_env


def _groups() -> dict[str, set[str]]:
    root = Path(config_dir())
    return {group.name: {path.stem for path in group.glob("*.yaml")}
            for group in root.iterdir() if group.is_dir() and group.name != "hydra"}


def test_help_lists_every_group_and_choice_with_the_commands_and_exit_codes(
        run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("dtrain: declarative, config-as-code training for PyTorch.")
    assert "powered by Hydra" not in text
    section = text.split("== Config groups (GROUP=CHOICE) ==", 1)[1].split("==", 1)[0]
    listed = {line.split()[0]: set(line.split()[1:]) for line in section.strip().splitlines()}
    for group, choices in _groups().items():
        assert group in listed, f"--help does not list the group {group}"
        assert choices <= listed[group], f"--help lacks {sorted(choices - listed[group])} of {group}"
    for command in ("dtrain dry_run=true", "dtrain-eval ckpt_path=", "dtrain-predict ckpt_path=", "dtrain-export ckpt_path=",
                    "dtrain-summary"):
        assert command in text
    assert "2 bad configuration or command line" in text and "75 preempted" in text


def test_help_piped_into_a_pager_that_quits_is_not_an_error(tmp_path: Path) -> None:
    # The reading end is closed before dtrain writes anything, as a pager that quits at once does:
    # every write fails with a broken pipe, whatever the timing.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        proc = subprocess.run([sys.executable, "-m", "declarative_train", "--help"], cwd=tmp_path, env=cli_env(),
                              stdout=writer, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(writer)
    assert proc.returncode == 0 and proc.stderr == ""
