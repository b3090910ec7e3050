"""The logger protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Logger:
    """Receives scalars during the run, text and hyperparameters once, and is closed at the end."""

    def setup(self) -> None:
        """Open files or connections (called once before fit/test, on rank zero)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar values at ``step``."""

    def log_text(self, tag: str, text: str) -> None:
        """Record a block of text (e.g. the composed config)."""

    def log_hyperparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Record the run's hyperparameters with its final metrics."""

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        """Record the distribution of a tensor's values at ``step`` (loggers without histograms ignore it)."""

    def finalize(self) -> None:
        """Flush and close."""
