"""A logger: every logged value as one JSON line in ``metrics.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from declarative_train.loggers import Logger


class JSONLinesLogger(Logger):
    """Appends ``{"step": S, "<name>": value, ...}`` to ``save_dir/metrics.jsonl`` per call.

    Hyperparameters and the final metrics go to ``save_dir/hparams.json``.
    """

    def __init__(self, save_dir: str) -> None:
        self.save_dir = Path(save_dir)
        self._file: TextIO | None = None

    def setup(self) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.save_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in finalize

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        assert self._file is not None, "setup() opens the file"
        self._file.write(json.dumps({"step": step, **metrics}) + "\n")

    def log_hyperparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        content = {"hparams": {k: str(v) for k, v in params.items()}, "metrics": dict(metrics)}
        (self.save_dir / "hparams.json").write_text(json.dumps(content, indent=2))

    def finalize(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
