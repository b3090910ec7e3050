"""The git repository a folder is in, asked of the ``git`` command (nothing when it is missing)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

TIMEOUT_S = 10


def git_output(folder: Path, *args: str, binary: bool = False, timeout: float = TIMEOUT_S) -> Any:
    """``git -C folder ARGS``'s standard output, or ``None`` when git fails, is missing or times out."""
    try:
        proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=timeout,
                              text=not binary)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_commit(folder: Path, timeout: float = TIMEOUT_S) -> str | None:
    """The commit checked out in the repository ``folder`` is in, or ``None`` outside any."""
    commit = git_output(folder, "rev-parse", "HEAD", timeout=timeout)
    return (commit.strip() or None) if commit else None
