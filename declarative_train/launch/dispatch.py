"""Run one validated job the way its accelerator config asks: in this process, or on N workers."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from declarative_train.build import forget_inferred_data
from declarative_train.distributed.plan import make_plan
from declarative_train.jobs.predict import predict_job
from declarative_train.jobs.train import run_job
from declarative_train.launch import elastic, external, spawn

log = logging.getLogger("declarative_train")


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
    if plan.strategy in ("ddp", "ddp_spawn", "fsdp"):
        forget_inferred_data()  # the workers read their own data
    if plan.strategy in ("ddp", "fsdp"):
        return elastic.launch(cfg, plan)
    if plan.strategy == "ddp_spawn":
        return spawn.launch(cfg, plan).results
    return run_job(cfg)


def launch_predict(cfg: DictConfig, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``dtrain-predict``'s job (its command checked, ``saved`` the checkpoint it read).

    Under torchrun/SLURM this process is one rank of the job; ``strategy=ddp`` starts workers
    through torch.distributed.elastic, which predict their shards and gather the rows on rank 0.
    Other strategies predict in this process on the first device.
    """
    process = external.external_process()
    if process is not None:
        return external.lead_job(cfg, process, job="predict")
    plan = make_plan(cfg.accelerator)
    if plan.strategy == "ddp":
        forget_inferred_data()  # the workers read their own data
        return elastic.launch(cfg, plan, job="predict")
    if plan.world_size > 1:
        log.info("dtrain-predict runs in one process under strategy=%s: %d devices asked for, the first one is used",
                 plan.strategy, plan.world_size)
    return predict_job(cfg, saved)
