"""``meta.json``: which command, code, environment and machine produced a run, kept with its checkpoints.

The launching process writes ``meta.json`` into the run folder before the run starts (and
``git.diff`` when the working directory's repository has uncommitted changes), and completes it
with the end time and status afterwards. Every process of the run reads it back to store the same
metadata in each checkpoint (``meta``), so that ``dtrain-eval`` can warn when the code it runs is
not the code that trained the checkpoint.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from declarative_train._version import __version__
from declarative_train.utils.git import git_commit, git_output
from declarative_train.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger("declarative_train")

META_FILE = "meta.json"
DIFF_FILE = "git.diff"
MAX_DIFF_BYTES = 10 * 1024 * 1024
MAX_UNTRACKED = 100


def record_start(cfg: DictConfig) -> dict[str, Any]:
    """Write ``meta.json`` (and ``git.diff`` for a dirty checkout) into the run folder; return it."""
    run_dir = Path(cfg.paths.output_dir)
    git = git_state(Path.cwd())
    diff = _uncommitted_changes(Path.cwd()) if git.get("dirty") else None
    if diff is not None:
        atomic_write_bytes(run_dir / DIFF_FILE, diff)
        git["diff_file"] = DIFF_FILE
    program = Path(sys.argv[0]).name
    program = "python -m declarative_train" if program == "__main__.py" else program
    meta = {
        "command": shlex.join([program, *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "declarative_train": __version__,
        "git": git,
        "python": platform.python_version(),
        "executable": sys.executable,
        **_torch_versions(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "accelerator": OmegaConf.to_container(cfg.accelerator, resolve=True),
        "devices": _device_names(),
        "started_at": _now(),
        "finished_at": None,
        "status": "running",
        "packages": _packages(),
        "earlier_attempts": _earlier_attempts(read(run_dir)),  # a run resumed into its own folder
    }
    atomic_write_json(run_dir / META_FILE, meta)
    return meta


def record_end(cfg: DictConfig) -> None:
    """Add the end time and the status (from ``results.json``) to the run's ``meta.json``."""
    run_dir = Path(cfg.paths.output_dir)
    meta = read(run_dir)
    if meta is None:
        return
    try:
        status = json.loads((run_dir / "results.json").read_text()).get("status", "unknown")
    except (OSError, ValueError, AttributeError):
        status = "unknown"
    atomic_write_json(run_dir / META_FILE, {**meta, "finished_at": _now(), "status": status})


def read(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run folder's ``meta.json``, or ``None`` when there is none (a run started another way)."""
    try:
        meta = json.loads((Path(run_dir) / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def warn_if_code_differs(saved_meta: Any, ckpt_path: str) -> str | None:
    """Log (and return) a warning when this checkout's commit or state differs from the checkpoint's."""
    if not isinstance(saved_meta, dict) or not isinstance(saved_meta.get("git"), dict):
        return None
    then = saved_meta["git"]
    if not then.get("commit"):
        return None
    now = git_state(Path.cwd())
    reasons = []
    if now.get("commit") != then.get("commit"):
        reasons.append(f"it was trained at commit {str(then['commit'])[:12]}, this is "
                       f"{str(now.get('commit') or 'no git checkout')[:12]}")
    if then.get("dirty"):
        reasons.append("it was trained with uncommitted changes (git.diff in its run folder)")
    if now.get("dirty"):
        reasons.append("this checkout has uncommitted changes")
    if not reasons:
        return None
    message = f"the code may differ from the code that trained {ckpt_path}: " + "; ".join(reasons)
    log.warning("%s", message)
    return message


def git_state(folder: Path) -> dict[str, Any]:
    """The repository ``folder`` is in: top level, commit, dirty flag, untracked files."""
    top = git_output(folder, "rev-parse", "--show-toplevel")
    if top is None:
        return {"repository": None, "note": "not inside a git repository (or git is not installed)"}
    commit = git_commit(folder)
    status = git_output(folder, "status", "--porcelain", "--untracked-files=normal") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    return {"repository": top.strip(), "commit": commit, "dirty": bool(status.strip()),
            "untracked": untracked[:MAX_UNTRACKED]}


def _uncommitted_changes(folder: Path) -> bytes | None:
    """``git diff HEAD`` (cut at :data:`MAX_DIFF_BYTES`), or ``None`` when there is nothing to show."""
    diff = git_output(folder, "diff", "HEAD", binary=True)
    if not isinstance(diff, bytes) or not diff:
        return None
    return diff if len(diff) <= MAX_DIFF_BYTES else diff[:MAX_DIFF_BYTES] + b"\n[git.diff cut at 10 MiB]\n"


def _earlier_attempts(previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What an earlier ``meta.json`` in the same folder said, in short (command, commit, times, status)."""
    if previous is None:
        return []
    git = previous.get("git")
    git = git if isinstance(git, dict) else {}
    summary = {"command": previous.get("command"), "commit": git.get("commit"), "dirty": git.get("dirty"),
               "started_at": previous.get("started_at"), "finished_at": previous.get("finished_at"),
               "status": previous.get("status")}
    earlier = previous.get("earlier_attempts")
    return [*(earlier if isinstance(earlier, list) else []), summary]


def _torch_versions() -> dict[str, Any]:
    import torch

    versions: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": None,
                                "nccl": None, "torch_xla": package_version("torch_xla")}
    if torch.backends.cudnn.is_available():
        versions["cudnn"] = torch.backends.cudnn.version()
    if torch.cuda.is_available() and hasattr(torch.cuda, "nccl"):
        try:
            versions["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception:  # no NCCL in this build
            versions["nccl"] = None
    return versions


def _device_names() -> list[str]:
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return [platform.processor() or platform.machine() or "cpu"]


def _packages() -> dict[str, str]:
    packages = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if name:
            packages[name] = version
    return dict(sorted(packages.items(), key=lambda item: item[0].lower()))


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str]:
    """Name and version from the metadata file's first lines (parsing whole files took ~120 ms a run)."""
    fields: dict[str, str] = {}
    for line in (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").splitlines():
        if not line:
            break  # the end of the header
        key, separator, value = line.partition(": ")
        if separator and key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
            if len(fields) == 2:
                break
    return fields.get("Name"), fields.get("Version") or dist.version


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
