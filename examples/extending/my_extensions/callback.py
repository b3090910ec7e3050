"""A callback: log the model's weight norm every N optimizer steps, remember the largest one."""

from __future__ import annotations

import torch

from declarative_train.callbacks import Callback
from declarative_train.engine import Event, TrainingContext


class WeightNormMonitor(Callback):
    """Logs ``weights/norm`` (the 2-norm of all parameters) every ``every_n_steps`` steps.

    The largest norm seen is checkpointed (under this callback's name in the config), so a
    resumed run keeps it.
    """

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = every_n_steps
        self.max_norm = 0.0

    def attach(self, context: TrainingContext) -> None:
        self.listen(context, Event.STEP_END, self._log, every=self.every_n_steps)

    def _log(self, context: TrainingContext) -> None:
        with torch.no_grad():
            norm = float(torch.linalg.vector_norm(torch.stack(
                [p.detach().norm() for p in context.task.parameters()])))  # host sync: every N steps only
        self.max_norm = max(self.max_norm, norm)
        context.log_metrics({"weights/norm": norm})

    def state_dict(self) -> dict[str, float]:
        return {"max_norm": self.max_norm}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.max_norm = state["max_norm"]
