"""The key-value store the processes of a job share (torch's ``TCPStore``).

One store per process, found the way ``env://`` finds it: the torchelastic agent's store when the
agent hosts one (``torchrun`` and ``dtrain``'s own workers), else rank 0 hosts it at
``MASTER_ADDR:MASTER_PORT`` (SLURM, ``ddp_spawn``). Each job's process group lives under its own
key prefix, so the jobs of a sweep and elastic restarts never read each other's keys.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch.distributed as dist

from declarative_train.distributed.env import restart_count

#: Environment variable naming the current job (jobs of a sweep under one torchrun).
JOB_VAR = "DTRAIN_JOB"
DEFAULT_TIMEOUT_S = 600

_store: dist.Store | None = None


def env_store(timeout_s: int = DEFAULT_TIMEOUT_S) -> dist.Store:
    """This process's connection to the job's store (created on first use)."""
    global _store
    if _store is None:
        _store, _, _ = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout_s)))
    return _store


def group_store() -> dist.Store:
    """The store of the current job's process group (a prefix of :func:`env_store`)."""
    job = os.environ.get(JOB_VAR, "0")
    return dist.PrefixStore(f"dtrain/pg/{job}/{restart_count()}", env_store())


def release() -> None:
    """Drop this process's store connection (a new one is made on next use)."""
    global _store
    _store = None
