"""Which process of a multi-process job this is, from the environment a launcher leaves behind.

Launchers describe a process through environment variables: torch.distributed.elastic (``torchrun``
and the workers that ``dtrain`` starts itself) sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``GROUP_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; SLURM's ``srun`` sets ``SLURM_PROCID``,
``SLURM_NTASKS`` and friends. :func:`detect` reads either; :func:`export` writes the torch names
so that ``env://`` rendezvous works under SLURM as well.
"""

from __future__ import annotations

import os
import re

import attrs

TORCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: SLURM job names of interactive allocations, where ``srun`` did not start the job's tasks.
INTERACTIVE_SLURM_JOB_NAMES = ("bash", "interactive", "sh", "zsh")


@attrs.frozen
class ProcessEnv:
    """One process of a job: its ranks, the job's size and where its processes meet."""

    rank: int
    """Global rank (0 .. world_size-1)."""
    local_rank: int
    """Rank among the processes of this node (picks the GPU)."""
    world_size: int
    """Number of processes in the job."""
    node_rank: int
    """Rank of this node."""
    master_addr: str
    """Host of the rendezvous store."""
    master_port: int
    """Port of the rendezvous store."""
    source: str
    """Who started the process: ``torchelastic`` or ``slurm``."""


def detect(environ: dict[str, str] | None = None) -> ProcessEnv | None:
    """The process environment set by torchelastic/torchrun or SLURM, or ``None`` outside one."""
    env = os.environ if environ is None else environ
    if all(env.get(name) for name in TORCH_VARS):
        return ProcessEnv(
            rank=int(env["RANK"]), local_rank=int(env["LOCAL_RANK"]), world_size=int(env["WORLD_SIZE"]),
            node_rank=int(env.get("GROUP_RANK", env.get("NODE_RANK", "0"))),
            master_addr=env["MASTER_ADDR"], master_port=int(env["MASTER_PORT"]), source="torchelastic",
        )
    return _slurm(env)


def _slurm(env: dict[str, str] | os._Environ[str]) -> ProcessEnv | None:
    """SLURM tasks started by ``srun`` (more than one task, not an interactive allocation)."""
    if int(env.get("SLURM_NTASKS", "1")) < 2 or "SLURM_PROCID" not in env:
        return None
    if env.get("SLURM_JOB_NAME") in INTERACTIVE_SLURM_JOB_NAMES:
        return None
    job_id = int(re.sub(r"\D", "", env.get("SLURM_JOB_ID", "0")) or 0)
    return ProcessEnv(
        rank=int(env["SLURM_PROCID"]), local_rank=int(env.get("SLURM_LOCALID", "0")),
        world_size=int(env["SLURM_NTASKS"]), node_rank=int(env.get("SLURM_NODEID", "0")),
        master_addr=env.get("MASTER_ADDR") or first_slurm_host(env.get("SLURM_NODELIST", "localhost")),
        # A port every task of the job derives alike; MASTER_PORT overrides it.
        master_port=int(env.get("MASTER_PORT") or 15000 + job_id % 20000),
        source="slurm",
    )


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``node[03-05,9],gpu1`` -> ``node03``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        return "localhost"
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def export(process: ProcessEnv) -> None:
    """Write ``process`` into the torch variables (``env://`` rendezvous reads them)."""
    os.environ.update({
        "RANK": str(process.rank), "LOCAL_RANK": str(process.local_rank),
        "WORLD_SIZE": str(process.world_size), "GROUP_RANK": str(process.node_rank),
        "MASTER_ADDR": process.master_addr, "MASTER_PORT": str(process.master_port),
    })


def restart_count() -> int:
    """How often torchelastic has restarted this worker group (0 on the first start)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
