"""Short throwaway training runs on a run's own model and data, leaving no trace on either.

The learning-rate range test and the batch-size search train the real model for a few steps.
:func:`restoring` puts back its weights and the global RNGs afterwards, so the run that follows
is the run that would have started without the trials, bit for bit (on a deterministic device).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import attrs
import torch

from declarative_train.accelerators import Accelerator
from declarative_train.checkpoint import RNGState
from declarative_train.distributed import SingleProcess
from declarative_train.engine.executor import Executor
from declarative_train.engine.scheduling import SchedulerSpec
from declarative_train.engine.settings import TrainerSettings
from declarative_train.precision import Precision


@attrs.frozen(kw_only=True)
class TrialParts:
    """What a trial run is made of: the run's own components (its optimizer as a factory)."""

    task: torch.nn.Module
    data: Any
    optimizer: Callable[..., torch.optim.Optimizer]
    accelerator: Accelerator
    precision_mode: str
    settings: TrainerSettings
    seed: int


@contextlib.contextmanager
def restoring(task: torch.nn.Module) -> Iterator[None]:
    """Put ``task``'s weights and buffers and the global RNG states back as they were on entry."""
    weights = {key: value.detach().clone() for key, value in task.state_dict().items()}
    rng = RNGState()
    rng_state = rng.state_dict()
    try:
        yield
    finally:
        task.load_state_dict(weights)
        rng.load_state_dict(rng_state)


def trial_executor(parts: TrialParts, *, lr: float | None = None, scheduler: SchedulerSpec | None = None,
                   max_steps: int) -> Executor:
    """An executor for ``max_steps`` optimizer steps: no validation, callbacks, loggers or checkpoints.

    It runs in this process alone (under DDP every rank runs its own trials on the whole train
    split) with a fresh optimizer (``lr`` replaces the configured one) and GradScaler.
    """
    settings = attrs.evolve(parts.settings, max_epochs=-1, max_steps=max_steps, limit_val_batches=0,
                            fast_dev_run=False, overfit_batches=0.0, val_check_interval=1.0,
                            check_val_every_n_epoch=1)
    optimizer = partial(parts.optimizer, lr=lr) if lr is not None else parts.optimizer
    return Executor(task=parts.task, data=parts.data, optimizer=optimizer, scheduler=scheduler,  # type: ignore[arg-type]
                    accelerator=parts.accelerator, distribution=SingleProcess(),
                    precision=Precision(parts.precision_mode, parts.accelerator.autocast_device_type),
                    settings=settings, seed=parts.seed)
