"""Under an external launcher (``torchrun``, SLURM ``srun``): start nothing, still one run folder.

Every process of the job runs ``dtrain`` with the same command line. Rank 0 alone goes through
Hydra (compose, validate, create the run folder, write ``.hydra/``); for each job it writes the
resolved config into the folder and publishes the folder's path in the job's store. The other
ranks never compose: they wait for the path, read the resolved config and run the job as workers
(:func:`declarative_train.launch.worker.run_worker`). This repeats for every job of a ``-m``
sweep; at the end rank 0 publishes its exit status, which the other ranks exit with too (so a
command line that fails validation exits 2 on every rank).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from omegaconf import DictConfig

from declarative_train.distributed.env import ProcessEnv, detect, export, restart_count
from declarative_train.distributed.group import leave_process_group
from declarative_train.distributed.store import JOB_VAR, env_store
from declarative_train.launch.logs import tag_rank
from declarative_train.launch.resolved import write_resolved
from declarative_train.launch.worker import JOBS, run_worker

log = logging.getLogger("declarative_train")

_END = "end:"
#: How long rank 0 waits for the other ranks to read its exit status (it may host the store).
ACK_TIMEOUT_S = 30


class _Leader:
    """Rank 0's side: how many jobs it has published."""

    active = False
    jobs = 0


def external_process() -> ProcessEnv | None:
    """This process's place in a job an external launcher started, or ``None``."""
    process = detect()
    if process is not None:
        export(process)  # SLURM's variables under torch's names, for env:// rendezvous
    return process


def _key(job: int) -> str:
    return f"dtrain/jobs/{restart_count()}/{job}"


def follower() -> ProcessEnv | None:
    """This process, when it is a rank other than 0 of a job an external launcher started.

    Such a rank never composes a config: ``dtrain`` runs :func:`follow` instead and exits with
    its result.
    """
    process = external_process()
    return process if process is not None and process.world_size > 1 and process.rank != 0 else None


@contextlib.contextmanager
def leading() -> Iterator[None]:
    """Around ``dtrain``'s main on rank 0 of an external launch: publish each job, then the exit status.

    Elsewhere (one process, or ``dtrain``'s own workers) it does nothing.
    """
    process = external_process()
    if process is None or process.world_size < 2:
        yield
        return
    _Leader.active = True
    code: Any = 0
    try:
        yield
    except SystemExit as exc:
        code = exc.code
        raise
    except BaseException:
        code = 1
        raise
    finally:
        _finish(process, code)


def follow(process: ProcessEnv) -> int:
    """Run each job rank 0 publishes; return rank 0's exit status (1 if a job fails here)."""
    store = env_store()
    job = 0
    while True:
        value = store.get(_key(job)).decode()
        if value.startswith(_END):
            store.set(f"dtrain/ack/{restart_count()}/{process.rank}", "1")
            status = value[len(_END):]
            return int(status) if status.lstrip("-").isdigit() else 1
        os.environ[JOB_VAR] = str(job)
        try:
            run_worker(value)
        except Exception as exc:  # the launcher stops the other ranks when this one exits
            log.error("rank %d: job %d in %s failed: %s", process.rank, job, value, exc)
            return 1
        job += 1


def lead_job(cfg: DictConfig, process: ProcessEnv, job: str = "train") -> dict[str, Any]:
    """Run one ``job`` (``train``, ``predict``) as ``process``'s rank, publishing the run folder first when this is rank 0."""
    run = JOBS[job].run
    if process.world_size < 2:
        return run(cfg)
    run_dir = str(cfg.paths.output_dir)
    if _Leader.active:
        write_resolved(cfg, run_dir, job)
        os.environ[JOB_VAR] = str(_Leader.jobs)
        env_store().set(_key(_Leader.jobs), os.path.abspath(run_dir))
        _Leader.jobs += 1
    # else: every rank composed the same job itself (e.g. submitit with several tasks).
    tag_rank(process.rank)
    log.info("rank %d of %d (%s) running %s", process.rank, process.world_size, process.source, run_dir)
    try:
        return run(cfg)
    finally:
        leave_process_group()


def _finish(process: ProcessEnv, code: Any) -> None:
    status = code if isinstance(code, int) else (0 if code is None else 1)
    store = env_store()
    store.set(_key(_Leader.jobs), f"{_END}{status}")
    acks = [f"dtrain/ack/{restart_count()}/{rank}" for rank in range(1, process.world_size)]
    with contextlib.suppress(Exception):  # a rank that already died cannot answer
        store.wait(acks, timedelta(seconds=ACK_TIMEOUT_S))
