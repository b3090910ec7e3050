"""Evaluation of a stage (``val`` or ``test``): loss and metrics over its batches, on every rank."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from declarative_train.accelerators import Accelerator
from declarative_train.distributed import Distribution
from declarative_train.engine.context import TrainingContext
from declarative_train.engine.events import Event
from declarative_train.engine.loaders import StageLoaders
from declarative_train.precision import Precision
from declarative_train.tasks import StepOutput

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class Evaluator:
    """Runs a stage's batches through the task's evaluation step and reduces them over the ranks.

    ``metrics`` holds one metric collection per stage (``val/``, ``test/`` prefixed), or nothing.
    """

    def __init__(self, context: TrainingContext, loaders: StageLoaders, metrics: Mapping[str, Any], *,
                 prepare: Callable[[Any], Any], precision: Precision, accelerator: Accelerator,
                 distribution: Distribution) -> None:
        self.context = context
        self.loaders = loaders
        self.metrics = metrics
        self.prepare = prepare
        self.precision = precision
        self.accelerator = accelerator
        self.distribution = distribution

    def run(self, stage: str) -> dict[str, float]:
        """Evaluate ``stage``; the values go to ``state.metrics`` and the loggers, and are returned."""
        context, state = self.context, self.context.state
        loader = self.loaders.get(stage)
        n = self.loaders.count(stage, loader)
        outer_stage, state.stage = state.stage, stage
        metrics = self.metrics.get(stage)
        if metrics is not None:
            metrics.reset()
        task: Any = context.task
        task.eval()
        context.events.fire(Event.EVAL_START, context)
        step = task.test_step if stage == "test" else task.validation_step
        totals = self.distribution.reduce_sum(self._batches(step, loader, n, metrics))
        # Host sync at the end of evaluation only.
        evaluated = bool(totals[1] > 0)  # the same on every rank, so all of them sync the metrics
        results = {f"{stage}/loss": float(totals[0] / totals[1])} if evaluated else {}
        if metrics is not None and evaluated:
            results.update({k: float(v) for k, v in metrics.compute().items() if v.numel() == 1})
        state.metrics.update(results)
        context.log_metrics(results)
        context.events.fire(Event.EVAL_END, context)
        state.stage = outer_stage
        return results

    def _batches(self, step: Callable[[Any, int], Any], loader: Any, n: int, metrics: Any) -> torch.Tensor:
        """Run ``n`` batches through ``step``; return ``[loss sum, sample count]`` on the device.

        Metric inputs are checked on the first batch only: each check costs a host sync.
        """
        device = self.accelerator.device
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        count = torch.zeros((), device=device, dtype=torch.float64)
        checked: list[Any] = []
        try:
            with torch.no_grad():
                for batch_idx, batch in enumerate(loader):
                    if batch_idx >= n:
                        break
                    batch = self.prepare(batch)
                    with self.precision.autocast():
                        out = as_step_output(step(batch, batch_idx))
                    size = len(out.target) if out.target is not None and out.target.ndim else 1
                    loss_sum += out.loss.detach().double() * size
                    count += size
                    if metrics is not None and out.preds is not None:
                        preds = out.preds.float() if out.preds.dtype in _LOW_PRECISION else out.preds
                        metrics.update(preds, out.target)
                        if batch_idx == 0:
                            checked = _skip_input_checks(metrics)
                    self.accelerator.mark_step()
        finally:
            for metric in checked:
                metric.validate_args = True
        return torch.stack([loss_sum, count])


def stage_metrics(definitions: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """One metric collection per evaluation stage (``val/``, ``test/`` prefixed), on ``device``."""
    if not definitions:
        return {}
    from declarative_train.metrics import MetricCollection

    base = MetricCollection(dict(definitions)).to(device)
    return {stage: base.clone(prefix=f"{stage}/") for stage in ("val", "test")}


def as_step_output(out: Any) -> StepOutput:
    """An evaluation step's return value as a :class:`StepOutput`."""
    if isinstance(out, StepOutput):
        return out
    if isinstance(out, Mapping):
        return StepOutput(out["loss"], out.get("preds"), out.get("target"))
    if isinstance(out, torch.Tensor):
        return StepOutput(out)
    raise TypeError(f"an evaluation step must return StepOutput, a dict or a loss tensor, got {type(out).__name__}")


def _skip_input_checks(metrics: Any) -> list[Any]:
    """Turn off per-batch input checks (each costs a host sync) once the first batch passed them.

    Returns the metrics to switch back on after the evaluation.
    """
    switched = [m for m in metrics.values() if getattr(m, "validate_args", False)]
    for metric in switched:
        metric.validate_args = False
    return switched
