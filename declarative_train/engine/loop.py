"""One training epoch, top to bottom: batches, accumulation, optimizer steps, mid-epoch validation.

Host syncs: none per step. The epoch's mean loss is read once at its end; everything else that
reads a device value (logging, the loss guard) subscribes to ``STEP_END`` every N steps.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch

from declarative_train.accelerators import Accelerator
from declarative_train.distributed import Distribution
from declarative_train.engine.batches import validation_interval
from declarative_train.engine.context import TrainingContext
from declarative_train.engine.evaluation import Evaluator
from declarative_train.engine.events import Event
from declarative_train.engine.loaders import StageLoaders
from declarative_train.engine.loss_guard import LossGuard
from declarative_train.engine.optimization import Optimization
from declarative_train.precision import Precision

_NULL = contextlib.nullcontext()


class TrainingLoop:
    """Runs training epochs of ``context`` (the executor) with the parts it was set up with."""

    def __init__(self, context: TrainingContext, *, loaders: StageLoaders, training_step: Callable[[Any, int], Any],
                 optimization: Optimization, loss_guard: LossGuard, evaluator: Evaluator,
                 prepare: Callable[[Any], Any], precision: Precision, accelerator: Accelerator,
                 distribution: Distribution) -> None:
        self.context = context
        self.loaders = loaders
        self.training_step = training_step
        self.optimization = optimization
        self.loss_guard = loss_guard
        self.evaluator = evaluator
        self.prepare = prepare
        self.precision = precision
        self.accelerator = accelerator
        self.distribution = distribution

    def run_epoch(self, loader: Any) -> None:
        """Train one epoch (from ``state.batch_idx`` when resuming mid-epoch)."""
        context = self.context
        state, s, events = context.state, context.settings, context.events
        n = state.num_train_batches
        accumulate = s.accumulate_grad_batches
        val_every = self._validation_every(state.epoch, n)
        # Batches counted across epochs (check_val_every_n_epoch=None), or from this epoch's start.
        counted_before = state.epoch * n if s.check_val_every_n_epoch is None and not self.loaders.fast_dev_run else 0
        max_steps = self.loaders.fast_dev_run or s.max_steps  # fast_dev_run=N: N steps, as Lightning
        task: Any = context.task
        task.train()
        start = state.batch_idx  # > 0 when resuming mid-epoch
        if not start or state.epoch_loss_sum is None:
            state.epoch_loss_sum = torch.zeros((), device=self.accelerator.device)
        loss_sum = state.epoch_loss_sum
        state.epoch_finished = False
        events.fire(Event.EPOCH_START, context)
        for batch_idx, batch in self._batches(loader, start):
            if batch_idx >= n:
                break
            batch = self.prepare(batch)
            boundary = (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == n
            with self.distribution.no_sync(self.training_step) if not boundary else _NULL:
                with self.precision.autocast():
                    loss = self.training_step(batch, batch_idx)
                self.precision.backward(loss / accumulate if accumulate > 1 else loss)
            loss = loss.detach()
            # A GradScaler skips steps with non-finite losses; keep them out of the epoch mean.
            loss_sum += loss if self.precision.scaler is None else loss.nan_to_num(0.0, 0.0, 0.0)
            state.batch_idx = batch_idx + 1
            self.loss_guard.record(loss, state)  # keeps a reference; checked on logging steps
            if boundary:
                self.optimization.step()
                state.global_step += 1
                state.loss = loss
                events.fire(Event.STEP_END, context)
                self.optimization.step_scheduler("step", state)
                if max_steps >= 0 and state.global_step >= max_steps:
                    context.request_stop(f"max_steps={max_steps} reached")
            self.accelerator.mark_step()
            if val_every and (counted_before + state.batch_idx) % val_every == 0:
                self.evaluator.run("val")
                task.train()
            if boundary:
                events.fire(Event.STEP_CHECKPOINT, context)
            if state.should_stop:
                break
        # One host sync per epoch: the mean training loss over all ranks, for monitors and the log.
        if state.batch_idx:
            state.metrics["train/loss"] = float(self.distribution.reduce_sum(loss_sum)) / (
                state.batch_idx * self.distribution.world_size)
        if state.batch_idx >= n:
            self.optimization.step_scheduler("epoch", state)
            state.epoch_finished = True
        events.fire(Event.EPOCH_END, context)
        events.fire(Event.EPOCH_CHECKPOINT, context)

    def _batches(self, loader: Any, start: int) -> Iterable[tuple[int, Any]]:
        """``(batch_idx, batch)`` of this epoch from ``start``, in the order fixed by (seed, epoch)."""
        epoch = self.context.state.epoch
        sampler = self.loaders.train_sampler
        if sampler is not None:
            sampler.start_epoch(epoch, skip_batches=start)
            return enumerate(loader, start)
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        return itertools.islice(enumerate(loader), start, None)  # loads the skipped batches

    def _validation_every(self, epoch: int, num_train_batches: int) -> int:
        """Validate after every N training batches of this epoch (0: not in this epoch).

        With ``check_val_every_n_epoch=None`` the batches are counted across epochs.
        """
        s = self.context.settings
        if self.context.state.num_val_batches == 0:
            return 0
        if self.loaders.fast_dev_run:
            return num_train_batches
        if s.check_val_every_n_epoch is None:
            return int(s.val_check_interval)
        if (epoch + 1) % s.check_val_every_n_epoch:
            return 0
        return validation_interval(num_train_batches, s.val_check_interval)


def log_train_loss(context: TrainingContext) -> None:
    """Log ``train/loss`` (averaged over the ranks): a subscriber on logging steps."""
    loss = context.state.loss
    if loss is not None:
        distribution = context.distribution
        mean = distribution.reduce_sum(loss) / distribution.world_size if distribution.world_size > 1 else loss
        context.log_metrics({"train/loss": float(mean)})  # host sync: logging steps only
