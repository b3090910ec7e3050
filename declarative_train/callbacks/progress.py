"""Progress: a redrawn line on a terminal, periodic plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, TrainingContext

log = logging.getLogger("declarative_train.progress")


class ProgressBar(Callback):
    """When stdout is a terminal, redraws ``epoch e | batch b/n | loss | it/s`` there every
    ``refresh_rate`` steps.

    Otherwise logs one line per epoch with its metrics, and one line every ``log_interval_s``
    seconds during long epochs. Rank zero only.
    """

    def __init__(self, refresh_rate: int = 10, log_interval_s: float = 30.0, stream: TextIO | None = None) -> None:
        self.refresh_rate = max(1, refresh_rate)
        self.log_interval_s = log_interval_s
        self.stream: TextIO = stream or sys.stdout
        self._epoch_start = 0.0
        self._last_log = 0.0

    def attach(self, context: TrainingContext) -> None:
        if not context.distribution.is_global_zero:
            return
        self.interactive = self.stream.isatty()
        self.listen(context, Event.EPOCH_START, self._on_epoch_start)
        self.listen(context, Event.STEP_END, self._on_step, every=self.refresh_rate)
        self.listen(context, Event.EPOCH_END, self._on_epoch_end)

    def _on_epoch_start(self, context: TrainingContext) -> None:
        self._epoch_start = self._last_log = time.perf_counter()

    def _on_step(self, context: TrainingContext) -> None:
        now = time.perf_counter()
        if not self.interactive and now - self._last_log < self.log_interval_s:
            return
        self._last_log = now
        state = context.state
        rate = state.batch_idx / max(now - self._epoch_start, 1e-9)
        loss = float(state.loss) if state.loss is not None else float("nan")  # host sync on refresh only
        line = (f"epoch {state.epoch} | batch {state.batch_idx}/{state.num_train_batches} | "
                f"step {state.global_step} | loss {loss:.4f} | {rate:.1f} it/s")
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
            self.stream.flush()
        else:
            log.info(line)

    def _on_epoch_end(self, context: TrainingContext) -> None:
        state = context.state
        seconds = time.perf_counter() - self._epoch_start
        shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(state.metrics.items()) if not k.startswith("test/"))
        line = f"epoch {state.epoch} done in {seconds:.2f}s | step {state.global_step} | {shown}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(100) + "\n")
            self.stream.flush()
        else:
            log.info(line)
