"""One optimizer step (clipping, precision, the accelerator's step) and the scheduler's steps."""

from __future__ import annotations

import logging
from typing import Any

import torch

from declarative_train.accelerators import Accelerator
from declarative_train.engine.scheduling import SchedulerSpec, is_plateau
from declarative_train.engine.settings import TrainerSettings
from declarative_train.engine.state import LoopState
from declarative_train.precision import Precision

log = logging.getLogger(__name__)


class Optimization:
    """The optimizer and scheduler of a run, stepped the way the settings say."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: Any, spec: SchedulerSpec | None,
                 settings: TrainerSettings, precision: Precision, accelerator: Accelerator) -> None:
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.spec = spec
        self.precision = precision
        self.accelerator = accelerator
        self.clip_val = settings.gradient_clip_val
        self.clip_by_value = settings.gradient_clip_algorithm == "value"

    def step(self) -> None:
        """Clip (unscaled) gradients, step (the GradScaler may skip it), zero the gradients."""
        optimizer = self.optimizer
        if self.clip_val is not None:
            self.precision.unscale(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if self.clip_by_value:
                torch.nn.utils.clip_grad_value_(params, self.clip_val)
            else:  # under FSDP the gradients are DTensor shards: the norm is reduced over every shard
                torch.nn.utils.clip_grad_norm_(params, self.clip_val)
        self.precision.optimizer_step(optimizer, self.accelerator.optimizer_step)
        optimizer.zero_grad(set_to_none=True)

    def step_scheduler(self, interval: str, state: LoopState) -> None:
        """Step the scheduler if it runs per ``interval`` (``step``/``epoch``) and its frequency is due."""
        spec, scheduler = self.spec, self.scheduler
        if scheduler is None or spec is None or spec.interval != interval:
            return
        count = state.global_step if interval == "step" else state.epoch + 1
        if count % spec.frequency:
            return
        if is_plateau(scheduler):
            value = state.metrics.get(spec.monitor or "val/loss")
            if value is None:
                log.warning("scheduler monitor %r has no value yet; ReduceLROnPlateau not stepped", spec.monitor)
                return
            scheduler.step(value)
        else:
            scheduler.step()
