"""TensorBoard event files through ``torch.utils.tensorboard``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from declarative_train.loggers.base import Logger


class TensorBoardLogger(Logger):
    """Writes scalars, text, histograms and an hparams summary into ``save_dir/name``.

    The writer (and the tensorboard import) is created on first use, so building the logger is
    cheap. Hyperparameters appear in TensorBoard's HPARAMS tab next to their final metrics.
    ``name`` (a sweep job's overrides, empty for single runs) becomes the run's name in
    TensorBoard when it is pointed at a sweep folder.
    """

    def __init__(self, save_dir: str, name: str = "", flush_secs: int = 30) -> None:
        self.save_dir = save_dir
        self.name = name
        self.log_dir = os.path.join(save_dir, name) if name else save_dir
        self.flush_secs = flush_secs
        self._writer: Any = None

    def setup(self) -> None:
        self.writer  # noqa: B018 - creates the writer before the first step, not during it

    @property
    def writer(self) -> Any:
        """The ``SummaryWriter`` (created on first access)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=self.log_dir, flush_secs=self.flush_secs)
        return self._writer

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def log_text(self, tag: str, text: str) -> None:
        # Markdown code block so YAML keeps its indentation in TensorBoard's text tab.
        self.writer.add_text(tag, "```\n" + text + "\n```", 0)

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        self.writer.add_histogram(tag, values.detach().float().cpu(), step)

    def log_hyperparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params.items()}
        experiment, session_start, session_end = hparams(clean, dict(metrics))
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        # The HPARAMS tab reads each metric's value from the run's scalars of the same tag;
        # the executor has logged them already.

    def finalize(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
