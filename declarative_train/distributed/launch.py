"""Run one validated job the way its accelerator config asks: in this process, or on N workers."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from declarative_train.distributed import elastic, external, spawn
from declarative_train.distributed.base import Distribution, SingleProcess
from declarative_train.distributed.env import detect
from declarative_train.distributed.plan import make_plan


def launch_job(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg`` and return its results (``results.json`` content).

    Under torchrun/SLURM this process is one rank of the job; otherwise ``strategy=ddp`` starts
    workers through torch.distributed.elastic, ``ddp_spawn`` through ``torch.multiprocessing``,
    and ``single``/``xla`` run here.
    """
    from declarative_train.run import run_job

    process = external.external_process()
    if process is not None:
        return external.lead_job(cfg, process)
    plan = make_plan(cfg.accelerator)
    if plan.strategy == "ddp":
        return elastic.launch(cfg, plan)
    if plan.strategy == "ddp_spawn":
        return spawn.launch(cfg, plan).results
    return run_job(cfg)


def build_distribution(cfg: DictConfig) -> Distribution:
    """The distribution of this process: DDP when it is one rank of several, else one process."""
    from declarative_train.distributed.ddp import DDPDistribution

    process = detect()
    if process is None or process.world_size < 2:
        return SingleProcess()
    acc = cfg.accelerator
    return DDPDistribution(
        process, backend=acc.backend, timeout_s=acc.timeout_s,
        find_unused_parameters=acc.find_unused_parameters, sync_batchnorm=acc.sync_batchnorm,
        seed=cfg.seed,
    )
