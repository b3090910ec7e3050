"""Distribution: ranks, collectives, samplers and model wrapping for one or many processes.

``base`` (the protocol, one process), ``ddp`` (DistributedDataParallel), ``launch`` (run a job in
this process or on workers: ``elastic`` for ``ddp``, ``spawn`` for ``ddp_spawn``, ``external`` under
torchrun/SLURM), ``worker`` (the worker entry point), ``plan`` (strategy and process count rules).
"""

from declarative_train.distributed.base import Distribution, SingleProcess
from declarative_train.distributed.ddp import DDPDistribution

__all__ = ["DDPDistribution", "Distribution", "SingleProcess"]
