"""Scalars in ``metrics.csv`` and hyperparameters in ``hparams.yaml`` (Lightning's CSVLogger layout)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from typing import Any

from declarative_train.loggers.base import Logger
from declarative_train.utils.io import atomic_write_bytes

#: The first column of ``metrics.csv``.
STEP = "step"
METRICS_FILE = "metrics.csv"
HPARAMS_FILE = "hparams.yaml"


class CSVLogger(Logger):
    """Writes ``save_dir/metrics.csv`` (one row per ``log_metrics`` call) and ``save_dir/hparams.yaml``.

    The header is ``step`` followed by every metric name logged so far, sorted; a row leaves the
    metrics it did not log empty. A new name widens the header, and the file is rewritten with it
    (as Lightning's ``CSVLogger`` does), so ``csv.DictReader`` and ``pandas.read_csv`` read it
    as Lightning's. Values are written with ``repr`` and read back exactly with ``float``.

    Rows are buffered and written every ``flush_logs_every_n_steps`` rows and at :meth:`finalize`.
    A write either appends complete lines in one call or replaces the whole file atomically (a
    temporary file renamed over it), so readers never see a torn file; a line torn by a crash in
    the middle of an append is dropped when the file is next opened.

    Resuming into the same folder continues the file without logging a step twice. The first
    step this process logs, ``F``, is where the resumed run picks up: rows already in the file
    after ``F`` are dropped (that part of the run is redone), and so are the values at ``F`` of
    the metrics this process logs again at ``F``; the rest (everything up to the checkpoint)
    stays. Rows are held until a step after ``F`` is logged (or :meth:`finalize`) to know them.
    """

    def __init__(self, save_dir: str, flush_logs_every_n_steps: int = 100) -> None:
        if flush_logs_every_n_steps < 1:
            raise ValueError(f"flush_logs_every_n_steps must be at least 1, got {flush_logs_every_n_steps}")
        self.save_dir = save_dir
        self.flush_logs_every_n_steps = flush_logs_every_n_steps
        self.metrics_file = os.path.join(save_dir, METRICS_FILE)
        self.hparams_file = os.path.join(save_dir, HPARAMS_FILE)
        self._pending: list[tuple[int, dict[str, Any]]] = []  # logged, not yet written
        self._keys: list[str] = []  # the metric columns of the file on disk (sorted, without step)
        self._opened = False  # the file on disk has been checked (and trimmed) for this process

    def setup(self) -> None:
        os.makedirs(self.save_dir, exist_ok=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        # Only a copy here: formatting waits for the flush, so a call costs about a microsecond.
        self._pending.append((step, dict(metrics)))
        if len(self._pending) >= self.flush_logs_every_n_steps:
            self._flush(force=False)

    def log_text(self, tag: str, text: str) -> None:
        """Ignored: a CSV file holds scalars (the run's config is in ``.hydra/config.yaml``)."""

    def log_hyperparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Write ``params`` to ``hparams.yaml`` (plain YAML; the metrics are in ``metrics.csv``)."""
        import yaml

        text = yaml.safe_dump({str(k): _plain(v) for k, v in params.items()}, sort_keys=False)
        atomic_write_bytes(self.hparams_file, text.encode())

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        """Ignored: histograms have no place in a CSV file."""

    def flush(self) -> None:
        """Write the buffered rows to ``metrics.csv``."""
        self._flush(force=True)

    def _flush(self, force: bool) -> None:
        if not self._pending:
            return
        first = self._pending[0][0]
        if not (self._opened or force) and all(step == first for step, _ in self._pending):
            return  # an existing file keeps what this process does not log again at `first`
        rows = [_format_row(step, metrics) for step, metrics in self._pending]
        self._pending = []
        kept: list[dict[str, str]] | None = None  # rows on disk, when the file must be rewritten
        if not self._opened:
            relogged = {key for row in rows if int(row[STEP]) == first for key in row if key != STEP}
            kept = self._trim_existing(first, relogged)
            self._opened = True
        keys = sorted({key for row in rows for key in row if key != STEP}.union(self._keys))
        if kept is None and keys == self._keys:
            self._append(rows)
            return
        if kept is None:
            kept = self._read()
        self._keys = keys
        self._rewrite([*kept, *rows])

    def finalize(self) -> None:
        self.flush()

    def _trim_existing(self, first_step: int, relogged: set[str]) -> list[dict[str, str]] | None:
        """Adopt the header of an existing file; its rows if it must be rewritten, else ``None``.

        It must be rewritten when it does not exist yet, holds rows after ``first_step`` or
        values at ``first_step`` of metrics in ``relogged`` (a resumed run redoes those), ends
        in a torn line, or has a header of another shape.
        """
        if not os.path.isfile(self.metrics_file):
            return []
        header, rows, torn = _read_file(self.metrics_file)
        self._keys = sorted(key for key in header if key != STEP)
        kept = []
        for row in rows:
            step = _step(row)
            if step == first_step:
                row = {k: v for k, v in row.items() if k not in relogged}
            if step < first_step or (step == first_step and len(row) > 1):
                kept.append(row)
        if kept != rows or torn or header != [STEP, *self._keys]:
            return kept
        return None

    def _read(self) -> list[dict[str, str]]:
        return _read_file(self.metrics_file)[1]

    def _append(self, rows: list[dict[str, str]]) -> None:
        text = _to_csv(self._keys, rows, header=False)
        with open(self.metrics_file, "a", newline="") as handle:
            handle.write(text)  # complete lines in one write

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        atomic_write_bytes(self.metrics_file, _to_csv(self._keys, rows, header=True).encode())


def _format_row(step: int, metrics: Mapping[str, Any]) -> dict[str, str]:
    row = {name: _format(value) for name, value in metrics.items()}
    row[STEP] = str(int(step))
    return row


def _format(value: Any) -> str:
    """``repr`` of the value as a float (exact round trip), integers as integers."""
    if hasattr(value, "item"):  # tensors and numpy scalars
        value = value.item()
    if isinstance(value, int):
        return str(int(value))
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def _step(row: Mapping[str, str]) -> int:
    try:
        return int(float(row.get(STEP) or "nan"))
    except ValueError:
        return -1  # a row without a step is kept


def _plain(value: Any) -> Any:
    """``value`` as plain YAML data: scalars, lists and dicts; anything else as its string."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _read_file(path: str) -> tuple[list[str], list[dict[str, str]], bool]:
    """The header, the rows and whether the last line was torn (no newline at its end)."""
    with open(path, newline="") as handle:
        text = handle.read()
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = [{k: v for k, v in row.items() if k is not None and v} for row in reader]
    return list(reader.fieldnames or []), rows, torn


def _to_csv(keys: list[str], rows: Iterable[Mapping[str, str]], header: bool) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=[STEP, *keys], lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
