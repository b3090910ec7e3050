"""Run one validated job the way its accelerator config asks: in this process, or on N workers."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from declarative_train.build import forget_inferred_data
from declarative_train.distributed.plan import make_plan
from declarative_train.jobs.train import run_job
from declarative_train.launch import elastic, external, spawn


def launch_job(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg`` and return its results (``results.json`` content).

    Under torchrun/SLURM this process is one rank of the job; otherwise ``strategy=ddp`` starts
    workers through torch.distributed.elastic, ``ddp_spawn`` through ``torch.multiprocessing``,
    and ``single``/``xla`` run here.
    """
    process = external.external_process()
    if process is not None:
        return external.lead_job(cfg, process)
    plan = make_plan(cfg.accelerator)
    if plan.strategy in ("ddp", "ddp_spawn"):
        forget_inferred_data()  # the workers read their own data
    if plan.strategy == "ddp":
        return elastic.launch(cfg, plan)
    if plan.strategy == "ddp_spawn":
        return spawn.launch(cfg, plan).results
    return run_job(cfg)
