"""What a sweep job does before it trains: reuse finished work, resume interrupted work, and
stop early when an earlier job failed and ``sweep.keep_going`` is false."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from declarative_train.checkpoint import is_sharded
from declarative_train.errors import JobSkipped
from declarative_train.utils.io import atomic_write_json

log = logging.getLogger("declarative_train")

RESULTS = "results.json"


def read_results(job_dir: Path) -> dict[str, Any] | None:
    """A job folder's ``results.json``, or ``None`` when it is missing or unreadable (being written)."""
    try:
        content = json.loads((job_dir / RESULTS).read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def record_outcome(cfg: DictConfig, status: str, error: str) -> None:
    """Write ``results.json`` for a job that never got to run (invalid config, skipped)."""
    atomic_write_json(Path(cfg.paths.output_dir) / RESULTS, {"status": status, "error": error, "wall_time_s": 0.0})


def prepare_job(cfg: DictConfig, sweep_dir: Path) -> dict[str, Any] | None:
    """Get a sweep job ready to run; return its earlier results when it needs no run at all.

    With ``sweep.resume``, a job whose ``results.json`` says ok is not run again, and any other job
    resumes from its ``last.ckpt`` (by setting ``ckpt_path``) when it has one; so does a job SLURM
    requeued (after a timeout or preemption). Raises :class:`JobSkipped` when
    ``sweep.keep_going`` is false and another job of this sweep failed.
    """
    restore_start_method()
    job_dir = Path(cfg.paths.output_dir)
    previous = read_results(job_dir)
    if cfg.sweep.resume and previous is not None and previous.get("status") == "ok":
        log.info("sweep.resume: %s finished before: not run again", job_dir / RESULTS)
        return previous
    if not cfg.sweep.keep_going:
        failed = _failed_job(sweep_dir, job_dir)
        if failed is not None:
            message = f"not run: job {failed} failed and sweep.keep_going=false"
            record_outcome(cfg, "skipped", message)
            raise JobSkipped(message)
    (job_dir / RESULTS).unlink(missing_ok=True)  # a stale outcome would hide that the job is running
    last = _last_checkpoint(cfg)
    requeued = int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0
    if (cfg.sweep.resume or requeued) and last is not None and not cfg.ckpt_path:
        log.info("%s: resuming from %s", "sweep.resume" if cfg.sweep.resume else "requeued by SLURM", last)
        cfg.ckpt_path = str(last)
    return None


def restore_start_method() -> None:
    """Give child processes the platform's default start method again inside joblib workers.

    joblib's loky workers make ``loky`` the default start method, and its process class cannot
    start DataLoader workers (``num_workers>0``) or other plain ``multiprocessing`` children.
    """
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)


def _failed_job(sweep_dir: Path, this_job: Path) -> str | None:
    """A job of this sweep launch (newer than its ``multirun.yaml``) that failed, if any."""
    marker = sweep_dir / "multirun.yaml"
    since = marker.stat().st_mtime if marker.is_file() else 0.0
    for results_file in sorted(sweep_dir.glob(f"*/{RESULTS}")):
        job_dir = results_file.parent
        if job_dir == this_job or results_file.stat().st_mtime < since:
            continue
        results = read_results(job_dir)
        if results is not None and results.get("status") == "failed":
            return job_dir.name
    return None


def _last_checkpoint(cfg: DictConfig) -> Path | None:
    checkpoint = (cfg.get("callbacks") or {}).get("model_checkpoint") or {}
    folder = Path(checkpoint.get("dirpath") or Path(cfg.paths.output_dir) / "checkpoints")
    last = folder / "last.ckpt"
    return last if last.is_file() or is_sharded(last) else None
