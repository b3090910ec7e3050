"""Stochastic weight averaging (SWA) with ``torch.optim.swa_utils``, as Lightning's callback."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.optim import swa_utils

from declarative_train.callbacks.averaging import AveragedParameters
from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, TrainingContext, unwrapped
from declarative_train.errors import ArgumentError

log = logging.getLogger(__name__)

_NAME = "StochasticWeightAveraging"


class StochasticWeightAveraging(Callback):
    """Averages the weights at the end of every epoch from ``swa_epoch_start`` on (equal weights).

    From the first SWA epoch the learning rates follow ``SWALR``: annealed from their current
    values to ``swa_lrs`` over ``annealing_epochs`` epochs (``cos`` or ``linear``), then constant;
    the run's own scheduler keeps counting but no longer sets the rates. At the end of fit the
    averaged weights are put into the model and the BatchNorm running statistics are recomputed
    for them (``swa_utils.update_bn``: one pass over the training batches, in train mode, without
    gradients; under DDP each rank then averages its statistics with the others, so the replicas
    stay identical). The test that follows fit tests this model instead of the best checkpoint.

    Checkpoints keep the training weights as the model's weights; the averaged weights, the
    number of averaged epochs and the SWALR position are this callback's state, so a resume
    continues the average exactly. The average holds parameters only (``get_swa_multi_avg_fn``
    on copies of them, not ``AveragedModel``, which deep-copies the whole model: a model with
    synchronised BatchNorm holds a process group that cannot be copied); buffers are the model's.
    Under ``strategy=fsdp`` each rank averages its own shards of the parameters; sharded
    checkpoint folders hold the average sharded, files of full weights hold it gathered.

    Args:
        swa_lrs: the SWA learning rate, one for every parameter group or a list with one per group.
        swa_epoch_start: an int N >= 1: average from the N-th epoch (1-based, as Lightning); a
            float f in (0, 1]: from epoch ``int(f * max_epochs)``. Must not be beyond max_epochs.
        annealing_epochs: epochs over which the learning rates reach ``swa_lrs`` (0: at once).
        annealing_strategy: ``cos`` or ``linear``.
        max_epochs: the trainer's ``max_epochs`` (the config passes ``${trainer.max_epochs}``), to
            check ``swa_epoch_start`` before the run starts; fit checks it again in any case.
        update_bn: recompute the BatchNorm statistics at the end of fit.
    """

    runs_in_fast_dev_run = False

    def __init__(self, swa_lrs: float | list[float], swa_epoch_start: int | float = 0.8, annealing_epochs: int = 10,
                 annealing_strategy: str = "cos", max_epochs: int | None = None, update_bn: bool = True) -> None:
        lrs = list(swa_lrs) if isinstance(swa_lrs, (list, tuple)) else [swa_lrs]
        if not lrs or any(not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0 for lr in lrs):
            raise ArgumentError(_NAME, "swa_lrs", f"must be a learning rate > 0 or a list of them, got {swa_lrs!r}")
        if isinstance(swa_epoch_start, bool) or not isinstance(swa_epoch_start, (int, float)) or (
                isinstance(swa_epoch_start, int) and swa_epoch_start < 1) or (
                isinstance(swa_epoch_start, float) and not 0.0 < swa_epoch_start <= 1.0):
            raise ArgumentError(_NAME, "swa_epoch_start", "must be an epoch number >= 1 or a fraction of max_epochs "
                                                          f"in (0, 1], got {swa_epoch_start!r}")
        if annealing_epochs < 0:
            raise ArgumentError(_NAME, "annealing_epochs", f"must be >= 0, got {annealing_epochs}")
        if annealing_strategy not in ("cos", "linear"):
            raise ArgumentError(_NAME, "annealing_strategy", f"must be 'cos' or 'linear', got {annealing_strategy!r}")
        self.swa_lrs = [float(lr) for lr in lrs]
        self.swa_epoch_start = swa_epoch_start
        self.annealing_epochs = annealing_epochs
        self.annealing_strategy = annealing_strategy
        self.update_bn = update_bn
        if max_epochs is not None:
            self.first_epoch(max_epochs)
        #: The running mean of the parameters at the SWA epochs' ends (``None`` before SWA starts).
        self.averaged: list[torch.Tensor] | None = None
        self.n_averaged = 0
        self.scheduler: swa_utils.SWALR | None = None
        #: Whether fit left the averaged weights in the model (then ``test("best")`` tests them).
        self.tests_final_weights = False
        self._lrs: list[float] = []
        self._model: torch.nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._slots: AveragedParameters | None = None
        self._pending: dict[str, Any] | None = None
        self._first = 0
        self._whole = True

    def first_epoch(self, max_epochs: int) -> int:
        """The 0-based epoch SWA starts in; ``ArgumentError`` if it is beyond ``max_epochs``."""
        unbounded = max_epochs is None or max_epochs < 0
        if isinstance(self.swa_epoch_start, float):
            if unbounded:
                raise ArgumentError(_NAME, "swa_epoch_start", f"a fraction ({self.swa_epoch_start}) needs "
                                                              "trainer.max_epochs >= 1; give an epoch number")
            number = int(self.swa_epoch_start * max_epochs)
        else:
            number = self.swa_epoch_start
        if not unbounded and number > max_epochs:
            raise ArgumentError(_NAME, "swa_epoch_start", f"is epoch {number}, beyond max_epochs={max_epochs}: "
                                                          "SWA would never start")
        return max(number - 1, 0)

    def attach(self, context: TrainingContext) -> None:
        self._first = self.first_epoch(context.settings.max_epochs)
        self._model = unwrapped(context.task)
        self._optimizer = context.optimizer
        self._slots = AveragedParameters(self._model)
        self._whole = not context.distribution.shards_checkpoints
        if self._pending is not None:
            self.load_state_dict(self._pending)
        self.listen(context, Event.FIT_START, self._resume_training_weights)
        self.listen(context, Event.EPOCH_START, self._maybe_start)
        self.listen(context, Event.STEP_CHECKPOINT, self._hold_lrs)
        self.listen(context, Event.EPOCH_END, self._average)
        self.listen(context, Event.FIT_END, self._finish)

    def _resume_training_weights(self, context: TrainingContext) -> None:
        assert self._slots is not None
        self._slots.swap_out()  # a second fit continues from the training weights
        self.tests_final_weights = False

    def _maybe_start(self, context: TrainingContext) -> None:
        if self.scheduler is None and context.state.epoch >= self._first:
            self._build(fresh=True)
            log.info("%s: averaging from epoch %d", _NAME, context.state.epoch)

    def _build(self, *, fresh: bool) -> None:
        assert self._model is not None and self._optimizer is not None
        groups = self._optimizer.param_groups
        lrs = self.swa_lrs * len(groups) if len(self.swa_lrs) == 1 else self.swa_lrs
        if len(lrs) != len(groups):
            raise ArgumentError(_NAME, "swa_lrs", f"has {len(lrs)} rates for {len(groups)} parameter groups")
        before = [group["lr"] for group in groups]
        self.scheduler = swa_utils.SWALR(
            self._optimizer, swa_lr=lrs, anneal_epochs=self.annealing_epochs,  # type: ignore[arg-type]  # a list works
            anneal_strategy=self.annealing_strategy)  # type: ignore[arg-type]
        if not fresh:  # restoring: the checkpoint's rates, not SWALR's first step
            self._set_lrs(before)
        self._lrs = [group["lr"] for group in groups]

    def _set_lrs(self, lrs: list[float]) -> None:
        assert self._optimizer is not None
        for group, lr in zip(self._optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def _hold_lrs(self, context: TrainingContext) -> None:
        if self.scheduler is not None:
            self._set_lrs(self._lrs)  # over a step-interval scheduler's

    def _average(self, context: TrainingContext) -> None:
        if self.scheduler is None or self._slots is None or not context.state.epoch_finished:
            return
        if self.averaged is None:
            self.averaged = self._slots.clones()
        else:
            _swa_update(self.averaged, self._slots.detached(), self.n_averaged)
        self.n_averaged += 1
        self._set_lrs(self._lrs)  # over an epoch-interval scheduler's, so SWALR continues from its own
        self.scheduler.step()
        self._lrs = [group["lr"] for group in self._optimizer.param_groups] if self._optimizer else []

    def _finish(self, context: TrainingContext) -> None:
        if self.averaged is None or self._slots is None or self._model is None:
            return
        self._slots.swap_in(self.averaged)
        if self.update_bn:
            _update_batch_norm(self._model, context)
        self.tests_final_weights = True
        log.info("%s: the model now holds the average of %d epochs", _NAME, self.n_averaged)

    def state_dict(self) -> dict[str, Any]:
        averaged = (self._slots.by_name(self._slots.for_checkpoint(self.averaged, whole=self._whole))
                    if self._slots is not None and self.averaged is not None else None)
        return {
            "averaged": averaged, "n_averaged": self.n_averaged,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "lrs": list(self._lrs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._model is None:
            self._pending = state  # applied at attach, once the model and optimizer are known
            return
        self._pending = None
        assert self._slots is not None
        self.n_averaged = int(state["n_averaged"])
        self.averaged = self._slots.from_names(state["averaged"]) if state.get("averaged") is not None else None
        if state.get("scheduler") is None:
            self.scheduler = None
            return
        self._build(fresh=False)
        assert self.scheduler is not None
        self.scheduler.load_state_dict(state["scheduler"])
        self._lrs = list(state["lrs"])
        self._set_lrs(self._lrs)


_swa_update = swa_utils.get_swa_multi_avg_fn()  # averaged += (current - averaged) / (n + 1), foreach


class _TrainingStep(torch.nn.Module):
    """``task.training_step(batch)`` as a forward, for ``swa_utils.update_bn`` over whole batches."""

    def __init__(self, task: torch.nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any) -> Any:
        return self.task.training_step(batch, 0)  # type: ignore[operator]


@torch.no_grad()
def _update_batch_norm(model: torch.nn.Module, context: TrainingContext) -> None:
    """Recompute BatchNorm statistics over the training batches (averaged over the ranks)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    # update_bn calls forward on a list's first element: wrap each batch so that it gets all of it.
    swa_utils.update_bn(([batch] for batch in context.batches("train")), _TrainingStep(model))
    distribution = context.distribution
    if distribution.world_size > 1:  # one all-reduce per statistic, once per fit
        for norm in norms:
            for name in ("running_mean", "running_var"):
                stat = getattr(norm, name)
                if stat is not None:
                    stat.copy_(distribution.reduce_sum(stat) / distribution.world_size)
