"""A callback for startup benchmarks: writes the wall-clock time of the first optimizer step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from declarative_train.callbacks import Callback
from declarative_train.engine.events import Event


class FirstStepProbe(Callback):
    """Writes ``time.time()`` to ``path`` at the first optimizer step."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def attach(self, executor: Any) -> None:
        executor.events.on(Event.STEP_END, self._write, once=1)

    def _write(self, executor: Any) -> None:
        self.path.write_text(repr(time.time()))
