"""A callback for bench_ddp.py: writes the wall-clock time of the first optimizer step to a file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from declarative_train.callbacks import Callback
from declarative_train.engine.events import Event


class FirstStep(Callback):
    """On rank 0, appends ``time.time()`` at the end of the first optimizer step to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def attach(self, executor: Any) -> None:
        if executor.distribution.is_global_zero:
            executor.events.on(Event.STEP_END, self._record, once=1)

    def _record(self, executor: Any) -> None:
        self.path.write_text(f"{time.time()}\n")
