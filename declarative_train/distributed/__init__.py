"""Distribution: ranks, collectives, samplers and model wrapping for one or many processes.

``base`` (the protocol, one process), ``ddp`` (DistributedDataParallel), ``fsdp`` (FSDP2
``fully_shard``), ``launch`` (run a job in
this process or on workers: ``elastic`` for ``ddp``, ``spawn`` for ``ddp_spawn``, ``external`` under
torchrun/SLURM), ``worker`` (the worker entry point), ``plan`` (strategy and process count rules).
"""

from typing import Any

from declarative_train.distributed.base import Distribution, SingleProcess
from declarative_train.distributed.ddp import DDPDistribution

__all__ = ["DDPDistribution", "Distribution", "FSDPDistribution", "SingleProcess"]


def __getattr__(name: str) -> Any:
    if name == "FSDPDistribution":  # torch.distributed.fsdp and .checkpoint load only when asked for
        from declarative_train.distributed.fsdp import FSDPDistribution

        return FSDPDistribution
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
