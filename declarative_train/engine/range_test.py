"""The learning-rate range test: train from the initial weights while the lr grows exponentially.

It runs the executor's own loop (accumulation, clipping, precision and device as configured) for
``num_steps`` optimizer steps with a ``LambdaLR`` ramp from ``min_lr`` to ``max_lr``, records each
step's loss and lr, and stops early once the smoothed loss diverges (see ``engine/lr_range.py``
for the arithmetic and the suggestion rules). Validation, callbacks and loggers do not run; the
model's weights and the RNGs are restored afterwards (``engine/trial_runs.py``).
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import attrs
import torch

from declarative_train.engine.context import TrainingContext
from declarative_train.engine.events import Event
from declarative_train.engine.lr_range import LossSmoother, Suggestion, exponential_lrs, suggest_lr
from declarative_train.engine.scheduling import SchedulerSpec
from declarative_train.engine.trial_runs import TrialParts, restoring, trial_executor
from declarative_train.errors import NonFiniteLossError

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class RangeTestSettings:
    """The ramp, the smoothing, when to stop and how to suggest (``tune.*`` in the config)."""

    min_lr: float = 1e-7
    max_lr: float = 1.0
    num_steps: int = 100
    smoothing: float = 0.05
    divergence_factor: float = 4.0
    rule: str = "steepest"


@attrs.define
class RangeTestResult:
    """What the range test saw: per step the lr, the raw and the smoothed loss; and its suggestion."""

    lrs: list[float] = attrs.field(factory=list)
    losses: list[float] = attrs.field(factory=list)
    smoothed: list[float] = attrs.field(factory=list)
    suggestion: Suggestion | None = None
    stop_reason: str = "num_steps reached"

    @property
    def lowest_loss(self) -> tuple[float, float] | None:
        """``(smoothed loss, lr)`` of the lowest finite smoothed loss (``None``: none was finite)."""
        finite = [(loss, lr) for loss, lr in zip(self.smoothed, self.lrs, strict=True) if math.isfinite(loss)]
        return min(finite) if finite else None

    def to_dict(self, settings: RangeTestSettings) -> dict[str, Any]:
        """The content of ``lr_find.json``."""
        suggestion = self.suggestion
        return {
            "settings": attrs.asdict(settings),
            "suggestion": None if suggestion is None else {"lr": suggestion.lr, "rule": suggestion.rule,
                                                           "index": suggestion.index},
            "stop_reason": self.stop_reason,
            "num_steps_run": len(self.lrs),
            "lrs": self.lrs, "losses": self.losses, "smoothed_losses": self.smoothed,
        }


def lr_range_test(parts: TrialParts, settings: RangeTestSettings) -> RangeTestResult:
    """Run the range test on ``parts`` (weights and RNGs restored afterwards)."""
    lrs = exponential_lrs(settings.min_lr, settings.max_lr, settings.num_steps)
    ramp = SchedulerSpec(partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda step: lrs[min(step, len(lrs) - 1)] / lrs[0]),
                         interval="step")
    result = RangeTestResult()
    smoother = LossSmoother(settings.smoothing, settings.divergence_factor)

    def record(context: TrainingContext) -> None:
        assert context.state.loss is not None
        loss = float(context.state.loss)  # host sync every step: the test needs each loss
        optimizer = context.optimizer
        assert optimizer is not None
        value = smoother.update(loss)
        result.lrs.append(float(optimizer.param_groups[0]["lr"]))
        result.losses.append(loss)
        result.smoothed.append(value)
        if smoother.diverged(value):
            context.request_stop(f"diverged at step {len(result.lrs)}: smoothed loss {value:.4g} > "
                                 f"{settings.divergence_factor} x the best {smoother.best:.4g}")

    with restoring(parts.task):
        executor = trial_executor(parts, lr=settings.min_lr, scheduler=ramp, max_steps=settings.num_steps)
        executor.setup()
        executor.events.on(Event.STEP_END, record)
        try:
            executor.fit()
        except NonFiniteLossError as exc:  # the loss guard's check can come before ours
            executor.state.stop_reason = f"non-finite loss: {exc}"
        if executor.state.stop_reason and "max_steps" not in executor.state.stop_reason:
            result.stop_reason = executor.state.stop_reason
    result.suggestion = suggest_lr(result.lrs, result.losses, result.smoothed, settings.rule, settings.smoothing)
    return result
