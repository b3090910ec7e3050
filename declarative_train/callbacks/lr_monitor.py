"""Log the learning rate of every parameter group."""

from __future__ import annotations

from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, TrainingContext


class LearningRateMonitor(Callback):
    """Logs ``lr-<OptimizerName>`` (``lr-<OptimizerName>/pg<i>`` with several parameter groups).

    ``logging_interval``: ``epoch`` (at each epoch start) or ``step`` (every
    ``log_every_n_steps`` optimizer steps).
    """

    def __init__(self, logging_interval: str = "epoch") -> None:
        if logging_interval not in ("epoch", "step"):
            raise ValueError(f"LearningRateMonitor: logging_interval must be 'epoch' or 'step', got {logging_interval!r}")
        self.logging_interval = logging_interval

    def attach(self, context: TrainingContext) -> None:
        if self.logging_interval == "step":
            self.listen(context, Event.STEP_END, self._log, every=context.settings.log_every_n_steps)
        else:
            self.listen(context, Event.EPOCH_START, self._log)

    def _log(self, context: TrainingContext) -> None:
        optimizer = context.optimizer
        assert optimizer is not None
        name = f"lr-{type(optimizer).__name__}"
        groups = optimizer.param_groups
        if len(groups) == 1:
            values = {name: float(groups[0]["lr"])}
        else:
            values = {f"{name}/pg{i + 1}": float(g["lr"]) for i, g in enumerate(groups)}
        context.log_metrics(values)
