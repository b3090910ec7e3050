"""Stop fit when a monitored metric stops improving, diverges, or is not finite."""

from __future__ import annotations

import logging
import math
from typing import Any

from declarative_train.callbacks.base import Callback, check_mode, is_improvement, resolve_mode
from declarative_train.engine import Event, TrainingContext
from declarative_train.errors import ArgumentError

log = logging.getLogger(__name__)


class EarlyStopping(Callback):
    """Checks ``monitor`` after each validation (after each epoch for ``train/*`` metrics).

    Stops when it has not improved by more than ``min_delta`` for ``patience`` checks, when it
    reaches ``stopping_threshold``, crosses ``divergence_threshold``, or is NaN/inf
    (``check_finite``). The reason is in ``executor.state.stop_reason``. ``mode`` is ``min`` or
    ``max``; ``None`` takes it from the monitored metric (``higher_is_better``; losses: ``min``).
    """

    runs_in_fast_dev_run = False

    def __init__(
        self, monitor: str = "val/loss", mode: str | None = None, patience: int = 3, min_delta: float = 0.0,
        stopping_threshold: float | None = None, divergence_threshold: float | None = None,
        check_finite: bool = True,
    ) -> None:
        if patience < 0:
            raise ArgumentError("EarlyStopping", "patience", f"must be >= 0, got {patience}")
        self.monitor = monitor
        self.mode = check_mode("EarlyStopping", mode)
        self.patience = patience
        self.min_delta = abs(min_delta)
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.check_finite = check_finite
        self.best: float | None = None
        self.wait = 0

    def attach(self, context: TrainingContext) -> None:
        self.mode = resolve_mode("EarlyStopping", self.mode, self.monitor, context)
        self.listen(context, Event.EPOCH_END if self.monitor.startswith("train/") else Event.EVAL_END, self._check)

    def _check(self, context: TrainingContext) -> None:
        state = context.state
        if state.stage not in ("val", "fit"):
            return
        value = state.metrics.get(self.monitor)
        if value is None:
            return
        reason = self._stop_reason(value)
        if reason:
            context.request_stop(f"EarlyStopping: {reason}")
            log.info("EarlyStopping: %s", reason)

    def _stop_reason(self, value: float) -> str:
        better = (lambda a, b: a < b) if self.mode == "min" else (lambda a, b: a > b)
        if self.check_finite and not math.isfinite(value):
            return f"{self.monitor} = {value} is not finite"
        if self.stopping_threshold is not None and (value == self.stopping_threshold or better(value, self.stopping_threshold)):
            return f"{self.monitor} = {value:.6g} reached stopping_threshold {self.stopping_threshold}"
        if self.divergence_threshold is not None and better(self.divergence_threshold, value):
            return f"{self.monitor} = {value:.6g} crossed divergence_threshold {self.divergence_threshold}"
        assert self.mode is not None, "attach() decides the mode"
        if is_improvement(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
            return ""
        self.wait += 1
        if self.wait >= self.patience:
            return f"{self.monitor} did not improve for {self.wait} checks (best {self.best:.6g})"
        return ""

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
