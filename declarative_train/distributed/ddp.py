"""DistributedDataParallel: one process per device, gradients averaged by DDP's bucketed all-reduce."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Sampler

from declarative_train.distributed import store as stores
from declarative_train.distributed.base import Distribution
from declarative_train.distributed.env import ProcessEnv
from declarative_train.distributed.group import leave_process_group
from declarative_train.distributed.samplers import EvalShardSampler, train_sampler
from declarative_train.distributed.sync_batchnorm import convert_sync_batchnorm

log = logging.getLogger(__name__)


class TrainingStep(nn.Module):
    """Routes ``task.training_step`` through ``forward``, which is what DDP hooks into."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.task.training_step(batch, batch_idx)  # type: ignore[operator]


class DDPDistribution(Distribution):
    """This process as one rank of a DDP job.

    ``setup`` joins the process group (gloo on the CPU, nccl on CUDA, unless ``backend`` says
    otherwise) through the launcher's store; ``wrap_training_step`` wraps the task in DDP (after
    ``sync_batchnorm`` conversion). DDP broadcasts rank 0's parameters when it wraps, so every
    rank starts from the same weights.

    Args:
        process: this process's ranks and the job size (:func:`declarative_train.distributed.env.detect`).
        backend: torch.distributed backend, ``None`` for the device's default.
        timeout_s: timeout of collectives (a stuck peer fails the job after this long).
        find_unused_parameters: passed to DDP (for models whose steps skip parameters).
        sync_batchnorm: synchronise batch-norm statistics across ranks.
        seed: the job seed; from the first training step on, rank ``r`` draws from ``seed + r``
            (``None``: ranks are not reseeded).
    """

    def __init__(
        self, process: ProcessEnv, *, backend: str | None = None, timeout_s: int = 600,
        find_unused_parameters: bool = False, sync_batchnorm: bool = False, seed: int | None = 0,
    ) -> None:
        self.process = process
        self.rank = process.rank
        self.local_rank = process.local_rank
        self.world_size = process.world_size
        self.backend = backend
        self.timeout = timedelta(seconds=timeout_s)
        self.find_unused_parameters = find_unused_parameters
        self.sync_batchnorm = sync_batchnorm
        self.seed = seed
        self.device = torch.device("cpu")
        self._ddp: DistributedDataParallel | None = None
        self._owns_group = False

    # ---------------------------------------------------------------- lifecycle
    def setup(self, device: torch.device) -> None:
        """Join the process group (once; a group that already exists is used as it is)."""
        self.device = device
        if dist.is_initialized():
            return
        backend = self.backend or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(
            backend, store=stores.group_store(), rank=self.rank, world_size=self.world_size,
            timeout=self.timeout, device_id=device if device.type == "cuda" else None,
        )
        self._owns_group = True
        log.info("joined process group: rank %d of %d (%s, local rank %d)",
                 self.rank, self.world_size, backend, self.local_rank)

    def teardown(self) -> None:
        """Leave the process group this object joined (after letting go of the DDP wrapper)."""
        self._ddp = None
        if self._owns_group:
            leave_process_group()
        self._owns_group = False

    # ---------------------------------------------------------------- model and data
    def wrap_training_step(self, task: nn.Module) -> Callable[[Any, int], torch.Tensor]:
        """DDP around ``task``'s training step; from here on each rank has its own RNG stream.

        Called once the model is built and the data set up (both need the same random numbers
        on every rank); dropout masks and DataLoader worker seeds should differ per rank.
        """
        if self.sync_batchnorm:
            # On the CPU, batch-norm statistics travel in a group of their own (see CPUSyncBatchNorm).
            group = dist.new_group(backend="gloo") if self.device.type == "cpu" else None
            converted = convert_sync_batchnorm(task, self.device.type, group)
            if converted is not task:
                raise TypeError("sync_batchnorm: the task itself is a batch-norm layer; wrap it in a Task")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self._ddp = DistributedDataParallel(
            TrainingStep(task), device_ids=device_ids, find_unused_parameters=self.find_unused_parameters,
        )
        if self.seed is not None:
            _seed_all(self.seed + self.rank)
        return self._ddp

    def sampler(self, dataset: Dataset[Any], *, shuffle: bool, seed: int) -> Sampler[Any] | None:
        """Even, epoch-shuffled shards for training; non-repeating ordered shards otherwise."""
        if shuffle:
            return train_sampler(dataset, rank=self.rank, world_size=self.world_size, shuffle=True, seed=seed)
        return EvalShardSampler(dataset, rank=self.rank, world_size=self.world_size)  # type: ignore[arg-type]

    def no_sync(self, model_step: Any) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce (micro-batches before an accumulation boundary)."""
        return model_step.no_sync() if isinstance(model_step, DistributedDataParallel) else contextlib.nullcontext()

    # ---------------------------------------------------------------- collectives
    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (a new tensor; ``tensor`` is left alone)."""
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    #: Checkpoints hold every rank's RNG states, gathered when the state is taken.
    gathers_state = True


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
