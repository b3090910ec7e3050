"""The terminal side of :class:`~declarative_train.callbacks.ProgressBar`: tqdm bars.

Imported only when a terminal is attached. One bar per epoch stays on screen when the epoch ends;
a validation or test that runs longer than ``eval_delay_s`` gets a bar below it (``position=1``,
cleared when done). While a bar is shown, the root logger's console handlers write through
``tqdm.write``, so log lines appear above the bars instead of inside them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

from declarative_train.engine import TrainingContext


class _Bar(tqdm):
    monitor_interval = 0  # no monitor thread: the callback decides when to redraw


class _BarSafeStream:
    """A console handler's stream that clears the bars, writes the record, then redraws them."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        _Bar.write(text, file=self.stream, end="")

    def flush(self) -> None:
        self.stream.flush()


class TerminalBars:
    """The event handlers :class:`ProgressBar` subscribes when its stream is a terminal."""

    #: Fewer redraws than this apart are skipped (and so is their loss sync).
    redraw_interval_s = 0.1
    #: Evaluations shorter than this show no bar (and write nothing).
    eval_delay_s = 0.5

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.epoch_bar: Any = None
        self.eval_bar: Any = None
        self._loss = ""
        self._val: dict[str, float] = {}
        self._drawn_at = 0.0
        self._hook: Any = None
        self._eval_stage, self._eval_total, self._eval_started, self._evaluated = "", 0, 0.0, 0
        self._redirected: list[tuple[logging.StreamHandler[Any], Any]] = []

    # ------------------------------------------------------------------ training epochs
    def open_epoch(self, context: TrainingContext) -> None:
        """A bar for this epoch, from ``batch_idx`` (> 0 when resuming mid-epoch)."""
        self._close_bar("epoch_bar")
        state = context.state
        self.epoch_bar = self._open(desc=f"epoch {state.epoch}", total=state.num_train_batches or None,
                                    initial=state.batch_idx, position=0, leave=True, mininterval=0, miniters=1)
        self._drawn_at = time.monotonic()

    def on_step(self, context: TrainingContext) -> None:
        """Every ``refresh_rate`` steps: batches done and the loss, unless drawn moments ago."""
        now = time.monotonic()
        if self.epoch_bar is None or now - self._drawn_at < self.redraw_interval_s:
            return
        self._drawn_at = now
        self._draw(context)

    def close_epoch(self, context: TrainingContext) -> None:
        """Leave the epoch's bar on screen at its final position (drawn once, by ``close``)."""
        if self.epoch_bar is None:
            return
        self._set_postfix(context)
        self.epoch_bar.n = context.state.batch_idx
        self._close_bar("epoch_bar")

    def _draw(self, context: TrainingContext) -> None:
        bar, done = self.epoch_bar, context.state.batch_idx - self.epoch_bar.n
        self._set_postfix(context, refresh=done <= 0)
        if done > 0:
            bar.update(done)  # redraws (mininterval=0, miniters=1), with a smoothed rate

    def _set_postfix(self, context: TrainingContext, *, refresh: bool = False) -> None:
        loss = context.state.loss
        if loss is not None:
            self._loss = f"{float(loss):.3g}"  # host sync: refresh steps and epoch ends only
        parts = ([f"loss={self._loss}"] if self._loss else []) + [f"{k}={v:.3g}" for k, v in sorted(self._val.items())]
        self.epoch_bar.set_postfix_str(", ".join(parts), refresh=refresh)

    # ------------------------------------------------------------------ validation and test
    def open_eval(self, context: TrainingContext) -> None:
        """Count the evaluation's batches; its bar appears below the epoch's after ``eval_delay_s``."""
        self._close_bar("eval_bar")
        state = context.state
        self._eval_stage, self._eval_started, self._evaluated = state.stage, time.monotonic(), 0
        self._eval_total = state.num_val_batches if state.stage == "val" else 0  # the state has no test count
        # The engine fires no event per evaluation batch; the task's forward runs once per batch.
        # Not under torch.compile: adding and removing a hook would recompile the forward.
        if not context.settings.compile:
            self._hook = context.task.register_forward_hook(self._count_batch)

    def _count_batch(self, *_: Any) -> None:
        total = self._eval_total
        self._evaluated = done = min(self._evaluated + 1, total) if total else self._evaluated + 1
        if self.eval_bar is not None:
            self.eval_bar.update(done - self.eval_bar.n)
        elif time.monotonic() - self._eval_started >= self.eval_delay_s:  # a short evaluation shows no bar
            self.eval_bar = self._open(desc=self._eval_stage, total=total or None, initial=done, leave=False,
                                       position=1 if self.epoch_bar is not None else 0)

    def close_eval(self, context: TrainingContext) -> None:
        """Clear the evaluation bar; validation results go to the epoch bar's next drawing."""
        self._remove_hook()
        self._close_bar("eval_bar")
        if context.state.stage == "val":
            self._val = {k: v for k, v in context.state.metrics.items() if k.startswith("val/")}

    # ------------------------------------------------------------------ end of fit, errors
    def close(self, context: TrainingContext) -> None:
        """Close every bar and give the log handlers their streams back (fit end, exceptions).

        After an exception the epoch bar stays on screen at the batch that failed.
        """
        self._remove_hook()
        self._close_bar("eval_bar")
        if self.epoch_bar is not None:
            self.epoch_bar.update(context.state.batch_idx - self.epoch_bar.n)  # no loss: no sync after a failure
        self._close_bar("epoch_bar")

    def _open(self, **kwargs: Any) -> Any:
        if not self._redirected:
            self._redirect_logging()
        return _Bar(file=self.stream, dynamic_ncols=True, unit="it", **kwargs)

    def _close_bar(self, name: str) -> None:
        bar = getattr(self, name)
        if bar is not None:
            setattr(self, name, None)
            bar.close()
        if self.epoch_bar is None and self.eval_bar is None:
            self._restore_logging()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _redirect_logging(self) -> None:
        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
                    and (stream is self.stream or stream in (sys.stdout, sys.stderr) and stream.isatty())):
                self._redirected.append((handler, stream))
                handler.setStream(_BarSafeStream(stream))

    def _restore_logging(self) -> None:
        while self._redirected:
            handler, stream = self._redirected.pop()
            handler.setStream(stream)
