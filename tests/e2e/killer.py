"""A callback that signals its own ``dtrain`` process at a chosen point (tests only).

Configured like any callback (``+callbacks.killer._target_=tests.e2e.killer.Killer
user_packages=[tests]``) so a real process is killed by a real signal at a known place:
after an optimizer step, inside a validation, or inside a checkpoint write (after the temp file
is complete, before it is renamed into place).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from declarative_train.callbacks import Callback
from declarative_train.engine.events import Event


class Killer(Callback):
    """Send ``signal_name`` to this process ``times`` times at one point."""

    def __init__(self, after_step: int | None = None, in_validation: int | None = None,
                 in_checkpoint_write: int | None = None, signal_name: str = "SIGKILL", times: int = 1) -> None:
        self.after_step = after_step
        self.in_validation = in_validation
        self.in_checkpoint_write = in_checkpoint_write
        self.signum = signal.Signals[signal_name]
        self.times = times

    def attach(self, executor: Any) -> None:
        if self.after_step is not None:
            executor.events.on(Event.STEP_END, self._fire, once=self.after_step)
        if self.in_validation is not None:
            executor.events.on(Event.EVAL_START, self._fire, once=self.in_validation)
        if self.in_checkpoint_write is not None:
            self._wrap_rename(self.in_checkpoint_write)

    def _fire(self, executor: Any = None) -> None:
        for _ in range(self.times):
            os.kill(os.getpid(), self.signum)

    def _wrap_rename(self, nth: int) -> None:
        real_replace = os.replace
        calls = 0

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            nonlocal calls
            if str(dst).endswith(".ckpt"):
                calls += 1
                if calls == nth:
                    self._fire()
            real_replace(src, dst, *args, **kwargs)

        os.replace = replace  # type: ignore[assignment]
