"""Progress: tqdm bars on a terminal, periodic plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, TrainingContext

log = logging.getLogger("declarative_train.progress")


class ProgressBar(Callback):
    """Shows how far training is. Rank zero only.

    When ``stream`` (default: stdout) is a terminal: one tqdm bar per epoch (batches done/total,
    it/s, ETA, the latest training loss and validation metrics), redrawn in place every
    ``refresh_rate`` optimizer steps and at most 10 times a second, with a validation or test
    longer than half a second as a bar below it (see ``progress_terminal.py``). Otherwise, no
    bar and no carriage returns: one
    log line per epoch with its metrics, and one every ``log_interval_s`` seconds during long
    epochs.
    """

    def __init__(self, refresh_rate: int = 10, log_interval_s: float = 30.0, stream: TextIO | None = None) -> None:
        self.refresh_rate = max(1, refresh_rate)
        self.log_interval_s = log_interval_s
        self.stream = stream
        self._epoch_start = 0.0
        self._last_log = 0.0

    def attach(self, context: TrainingContext) -> None:
        if not context.distribution.is_global_zero:
            return
        stream = self.stream or sys.stdout
        if stream.isatty():
            # Imported here: runs that write to files, CI logs or pipes never load tqdm for this.
            from declarative_train.callbacks.progress_terminal import TerminalBars

            bars = TerminalBars(stream)
            self.listen(context, Event.EPOCH_START, bars.open_epoch)
            self.listen(context, Event.STEP_END, bars.on_step, every=self.refresh_rate)
            self.listen(context, Event.EVAL_START, bars.open_eval)
            self.listen(context, Event.EVAL_END, bars.close_eval)
            self.listen(context, Event.EPOCH_END, bars.close_epoch)
            self.listen(context, Event.FIT_END, bars.close)
            self.listen(context, Event.EXCEPTION, bars.close)
            return
        self.listen(context, Event.EPOCH_START, self._on_epoch_start)
        self.listen(context, Event.STEP_END, self._on_step, every=self.refresh_rate)
        self.listen(context, Event.EPOCH_END, self._on_epoch_end)

    def _on_epoch_start(self, context: TrainingContext) -> None:
        self._epoch_start = self._last_log = time.perf_counter()

    def _on_step(self, context: TrainingContext) -> None:
        now = time.perf_counter()
        if now - self._last_log < self.log_interval_s:
            return
        self._last_log = now
        state = context.state
        rate = state.batch_idx / max(now - self._epoch_start, 1e-9)
        loss = float(state.loss) if state.loss is not None else float("nan")  # host sync, once per log line
        log.info("epoch %d | batch %d/%d | step %d | loss %.4f | %.1f it/s", state.epoch, state.batch_idx,
                 state.num_train_batches, state.global_step, loss, rate)

    def _on_epoch_end(self, context: TrainingContext) -> None:
        state = context.state
        seconds = time.perf_counter() - self._epoch_start
        shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(state.metrics.items()) if not k.startswith("test/"))
        log.info("epoch %d done in %.2fs | step %d | %s", state.epoch, seconds, state.global_step, shown)
