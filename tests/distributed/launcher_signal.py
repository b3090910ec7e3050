"""A callback with which rank 0 signals the ``dtrain`` process that started it (tests only).

A scheduler that preempts a job signals the launching process; this does the same from inside the
run at a known step. Rank 0 then waits for the launcher to stop it, so the other ranks wait at the
next collective and the run stops at that step however fast the machine is. Configured like any
callback: ``user_packages=[tests] +callbacks.stop._target_=tests.distributed.launcher_signal.SignalLauncher``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from declarative_train.callbacks import Callback
from declarative_train.engine.events import Event


class SignalLauncher(Callback):
    """Rank 0 sends ``signal_name`` to its parent (the launching ``dtrain``) after step ``after_step``, then waits."""

    def __init__(self, after_step: int, signal_name: str = "SIGTERM", wait_s: float = 120.0) -> None:
        self.after_step = after_step
        self.signum = signal.Signals[signal_name]
        self.wait_s = wait_s

    def attach(self, executor: Any) -> None:
        if executor.distribution.is_global_zero:
            executor.events.on(Event.STEP_END, self._fire, once=self.after_step)

    def _fire(self, executor: Any = None) -> None:
        os.kill(os.getppid(), self.signum)
        time.sleep(self.wait_s)  # the launcher stops this worker long before
