"""A worker process: ``python -m declarative_train.launch.worker RUN_DIR``.

Started by the elastic agent (``strategy=ddp``), or run in-process by the other ranks under an
external launcher. It reads the resolved config the launching process wrote into ``RUN_DIR`` (never
the command line), joins the job's process group, and runs the job the folder names (:data:`JOBS`:
``train``, or ``predict`` for ``dtrain-predict``) as its rank. After an elastic restart a training
job resumes from ``last.ckpt`` when one exists. A failure is written to torchelastic's error file,
so the launching process reports this rank's message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from omegaconf import DictConfig, open_dict

from declarative_train.distributed.env import detect, restart_count
from declarative_train.distributed.group import leave_process_group
from declarative_train.errors import RunFailed
from declarative_train.jobs.predict import predict_job
from declarative_train.jobs.resume import newest_last_checkpoint
from declarative_train.jobs.train import run_job
from declarative_train.launch.logs import configure_worker_logging
from declarative_train.launch.resolved import load_resolved, resolved_job

log = logging.getLogger("declarative_train")


@attrs.frozen
class WorkerJob:
    """What a worker runs for one kind of job."""

    run: Callable[[DictConfig], dict[str, Any]]
    """The job function, called with the resolved config on every rank."""
    on_restart: Callable[[DictConfig], None] | None = None
    """Adjusts the config after an elastic restart (``None``: run it again as it is)."""


def run_worker(run_dir: str | Path) -> dict[str, Any]:
    """Run the job in ``run_dir`` as the rank the environment names; return its results."""
    process = detect()
    if process is None:
        raise RuntimeError("a worker needs RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT")
    configure_worker_logging(run_dir, process.rank)
    job = JOBS[resolved_job(run_dir)]
    cfg = load_resolved(run_dir)
    if restart_count() > 0 and job.on_restart is not None:
        job.on_restart(cfg)
    log.info("worker rank %d of %d (pid %d, local rank %d, node %d) running %s",
             process.rank, process.world_size, os.getpid(), process.local_rank, process.node_rank, run_dir)
    try:
        return job.run(cfg)
    finally:
        leave_process_group()


def resume_from_last(cfg: DictConfig) -> None:
    """Point ``cfg.ckpt_path`` at the newest ``last.ckpt`` in the run folder, if there is one."""
    last = newest_last_checkpoint(cfg.paths.output_dir)
    if last is None:
        log.info("elastic restart %d: no last.ckpt yet, starting over", restart_count())
        return
    with open_dict(cfg):
        cfg.ckpt_path = str(last)
        cfg.resume = None  # the restart's checkpoint wins over resume=auto's search elsewhere
    log.info("elastic restart %d: resuming from %s", restart_count(), last)


#: The jobs a worker runs, by the name ``resolved_job.txt`` gives (the resolved config's schemas have the same names).
JOBS: dict[str, WorkerJob] = {
    "train": WorkerJob(run_job, on_restart=resume_from_last),
    "predict": WorkerJob(predict_job),
}


def write_error_file(message: str) -> None:
    """Record ``message`` where the elastic agent looks for this worker's failure."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"message": message, "timestamp": int(time.time())}))


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 0 on success, 1 on failure (the message goes to the error file)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m declarative_train.launch.worker RUN_DIR", file=sys.stderr)
        return 2
    try:
        run_worker(args[0])
    except Exception as exc:
        message = str(exc) if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, RunFailed):  # run_job has logged its own failures
            log.exception("%s", message)
        write_error_file(message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
