"""A sweep folder's jobs as one table: ``summary.csv`` and ``summary.md``, best job first.

Works on a finished sweep, one still running, and one that crashed: a job folder without
``results.json`` is ``running`` (or was interrupted), and a grid job without a folder is ``missing``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import yaml

from declarative_train.loggers.mlflow_logger import PARENT_RUN_ID_FILE, RUN_ID_FILE, read_run_id
from declarative_train.sweep.grid import expected_jobs
from declarative_train.sweep.job import read_results
from declarative_train.utils.io import atomic_write_bytes

#: Order of statuses in the table after the ranked ``ok`` rows.
STATUS_ORDER = {"ok": 0, "failed": 1, "skipped": 2, "running": 3, "interrupted": 3, "preempted": 3, "missing": 4}


@attrs.define
class JobRow:
    """One job of a sweep."""

    job: str
    overrides: list[str]
    status: str
    error: str = ""
    objective: float | None = None
    monitor: str | None = None
    best_model_score: float | None = None
    test: dict[str, float] = attrs.Factory(dict)
    epochs: int | None = None
    wall_time_s: float | None = None
    objective_name: str | None = None
    mode: str | None = None
    best: bool = False
    mlflow_run_id: str | None = None

    @property
    def status_text(self) -> str:
        """``ok``, or the status with the error's first line (``failed: ValueError: ...``)."""
        return f"{self.status}: {self.error}" if self.error else self.status


@attrs.define
class SweepSummary:
    """The jobs of ``sweep_dir`` sorted by the objective (``mode`` ``max``/``min``), best marked."""

    sweep_dir: Path
    rows: list[JobRow]
    objective_name: str | None
    mode: str | None

    @property
    def best(self) -> JobRow | None:
        """The best finished job, if any."""
        return next((row for row in self.rows if row.best), None)

    @property
    def unsuccessful(self) -> list[JobRow]:
        """Jobs that failed or were skipped."""
        return [row for row in self.rows if row.status in ("failed", "skipped")]

    def write(self) -> tuple[Path, Path]:
        """Write ``summary.csv`` and ``summary.md`` into the sweep folder (atomically)."""
        csv_path, md_path = self.sweep_dir / "summary.csv", self.sweep_dir / "summary.md"
        atomic_write_bytes(csv_path, self.to_csv().encode())
        atomic_write_bytes(md_path, self.to_markdown().encode())
        return csv_path, md_path

    def to_csv(self) -> str:
        """Every column, full overrides, numbers unrounded."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        mlflow = ["mlflow_run_id"] if self._has_mlflow() else []
        writer.writerow(["best", "job", "status", "error", *self._metric_headers(plain=True), "epochs", "wall_time_s",
                         "overrides", *mlflow])
        for row in self.rows:
            writer.writerow(["*" if row.best else "", row.job, row.status, row.error,
                             *self._metric_values(row, str), _blank(row.epochs), _blank(row.wall_time_s),
                             " ".join(row.overrides), *([row.mlflow_run_id or ""] if mlflow else [])])
        return out.getvalue()

    def to_markdown(self) -> str:
        """A heading, the overrides every job shares, and an aligned table (also readable as text)."""
        common = self._common_overrides()
        counts = {status: sum(r.status == status for r in self.rows) for status in STATUS_ORDER}
        lines = [f"# Sweep {self.sweep_dir}", "",
                 "- jobs: " + (", ".join(f"{n} {status}" for status, n in counts.items() if n) or "none")]
        if self.objective_name:
            lines.append(f"- objective: {self.objective_name} ({self.mode}); best job marked *")
        if common:
            lines.append(f"- every job: {' '.join(common)}")
        parent = read_run_id(self.sweep_dir / PARENT_RUN_ID_FILE)
        if parent:
            lines.append(f"- MLflow: the jobs are child runs of run {parent}")
        return "\n".join([*lines, "", self.table(), ""])

    def table(self) -> str:
        """The rows as an aligned Markdown table, only the overrides that differ between jobs."""
        common = set(self._common_overrides())
        mlflow = self._has_mlflow()
        header = ["best", "job", "overrides", "status", *self._metric_headers(), "epochs", "wall_time_s",
                  *(["mlflow_run_id"] if mlflow else [])]
        body = [["*" if r.best else "", r.job, " ".join(o for o in r.overrides if o not in common),
                 r.status_text.replace("|", "\\|"), *self._metric_values(r, _fmt),
                 _blank(r.epochs), "" if r.wall_time_s is None else f"{r.wall_time_s:.1f}",
                 *([r.mlflow_run_id or ""] if mlflow else [])] for r in self.rows]
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body)]
        def line(cells: Iterable[Any]) -> str:
            return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
        return "\n".join([line(header), line("-" * w for w in widths), *(line(r) for r in body)])

    def _has_mlflow(self) -> bool:
        return any(row.mlflow_run_id for row in self.rows)

    def _metric_headers(self, plain: bool = False) -> list[str]:
        objective = [self.objective_name if plain else f"{self.objective_name} ({self.mode})"] if self.objective_name else []
        monitors = [f"{m}{'_best' if plain else ' (best)'}" for m in self._other_monitors()]
        return objective + monitors + self._test_keys()

    def _metric_values(self, row: JobRow, fmt: Any) -> list[str]:
        values = [_blank(row.objective, fmt)] if self.objective_name else []
        values += [_blank(row.best_model_score if row.monitor == m else None, fmt) for m in self._other_monitors()]
        return values + [_blank(row.test.get(key), fmt) for key in self._test_keys()]

    def _other_monitors(self) -> list[str]:
        return sorted({r.monitor for r in self.rows if r.monitor and r.monitor != self.objective_name})

    def _test_keys(self) -> list[str]:
        return sorted({key for row in self.rows for key in row.test})

    def _common_overrides(self) -> list[str]:
        if len(self.rows) < 2:
            return []
        first = self.rows[0].overrides
        return [o for o in first if all(o in r.overrides for r in self.rows[1:])]


def summarize(sweep_dir: str | Path, unfinished: str = "running") -> SweepSummary:
    """Read every job of ``sweep_dir`` (finished, failed, running or missing) into a summary.

    ``unfinished`` is the status of a job folder without ``results.json``: ``running``, or
    ``interrupted`` when the caller knows the sweep has stopped.
    """
    sweep_dir = Path(sweep_dir)
    rows = [_row(job_dir, unfinished) for job_dir in _job_dirs(sweep_dir)]
    present = {row.job for row in rows}
    rows += [JobRow(job=name, overrides=overrides, status="missing")
             for name, overrides in expected_jobs(sweep_dir) if name not in present]
    named = next((r for r in rows if r.objective_name), None)
    objective_name, mode = (named.objective_name, named.mode) if named else (None, None)
    reverse = mode == "max"
    ranked = sorted((r for r in rows if r.status == "ok" and r.objective is not None),
                    key=lambda r: (-r.objective if reverse else r.objective, _job_key(r.job)))  # type: ignore[operator]
    rest = sorted((r for r in rows if r not in ranked), key=lambda r: (STATUS_ORDER.get(r.status, 9), _job_key(r.job)))
    if ranked:
        ranked[0].best = True
    return SweepSummary(sweep_dir=sweep_dir, rows=ranked + rest, objective_name=objective_name, mode=mode)


def _job_dirs(sweep_dir: Path) -> list[Path]:
    if not sweep_dir.is_dir():
        return []
    dirs = [p for p in sweep_dir.iterdir()
            if p.is_dir() and ((p / ".hydra" / "overrides.yaml").is_file() or (p / "results.json").is_file())]
    return sorted(dirs, key=lambda p: _job_key(p.name))


def _row(job_dir: Path, unfinished: str) -> JobRow:
    overrides = _overrides(job_dir)
    results = read_results(job_dir)
    mlflow_run_id = read_run_id(job_dir / RUN_ID_FILE)
    if results is None:
        return JobRow(job=job_dir.name, overrides=overrides, status=unfinished, mlflow_run_id=mlflow_run_id)
    status = str(results.get("status", "failed"))
    error = str(results.get("error") or "").strip().splitlines()
    objective = results.get("objective") or {}
    return JobRow(
        job=job_dir.name, overrides=overrides, status=status, error=error[0] if error else "",
        objective=objective.get("value"), monitor=results.get("monitor"),
        best_model_score=results.get("best_model_score"), test=dict(results.get("test") or {}),
        epochs=results.get("epochs"), wall_time_s=results.get("wall_time_s"),
        objective_name=objective.get("name"), mode=objective.get("mode"), mlflow_run_id=mlflow_run_id,
    )


def _overrides(job_dir: Path) -> list[str]:
    try:
        loaded = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in loaded or [] if not str(o).startswith("sweep.")]


def _job_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _blank(value: Any, fmt: Any = str) -> str:
    return "" if value is None else fmt(value)

