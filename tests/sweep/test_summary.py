"""Sweep summaries from sweep folders: order, best job, statuses, files, ``dtrain-summary``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from declarative_train.sweep.summary import summarize
from tests.conftest import cli_env


def _job(sweep: Path, num: int, overrides: list[str], results: dict[str, Any] | None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results is not None:
        (job / "results.json").write_text(json.dumps(results))
    return job


def _ok(value: float, test_acc: float, mode: str = "max") -> dict[str, Any]:
    return {"status": "ok", "monitor": "val/acc", "best_model_score": value, "epochs": 2, "wall_time_s": 1.5,
            "objective": {"name": "val/acc", "value": value, "mode": mode},
            "val": {"val/acc": value}, "test": {"test/acc": test_acc, "test/loss": 0.3}}


def _grid_multirun_yaml(sweep: Path, task: list[str]) -> None:
    hydra = {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                         "max_batch_size": None, "params": None},
             "sweep": {"dir": str(sweep), "subdir": "${hydra.job.num}"}, "overrides": {"task": task}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A grid of 5 jobs: two finished, one failed, one still running, one not started."""
    root = tmp_path / "sweep"
    root.mkdir()
    _grid_multirun_yaml(root, ["optimizer.lr=0.1,0.2,0.3,0.4,0.5", "debug=limit"])
    _job(root, 0, ["optimizer.lr=0.1", "debug=limit"], _ok(0.90, 0.88))
    _job(root, 1, ["optimizer.lr=0.2", "debug=limit"], {
        "status": "failed", "error": "run failed on rank 0 in fit at epoch 1, step 9: ValueError: boom\nmore", "wall_time_s": 0.2})
    _job(root, 2, ["optimizer.lr=0.3", "debug=limit"], _ok(0.95, 0.93))
    _job(root, 3, ["optimizer.lr=0.4", "debug=limit"], None)
    return root


def test_rows_are_ranked_by_the_objective_then_by_status(sweep: Path) -> None:
    summary = summarize(sweep)
    assert [(r.job, r.status) for r in summary.rows] == [
        ("2", "ok"), ("0", "ok"), ("1", "failed"), ("3", "running"), ("4", "missing")]
    assert summary.best is not None and summary.best.job == "2"
    assert [r.best for r in summary.rows] == [True, False, False, False, False]
    assert summary.rows[2].error == "run failed on rank 0 in fit at epoch 1, step 9: ValueError: boom"
    assert summary.rows[4].overrides == ["optimizer.lr=0.5", "debug=limit"]
    assert [r.job for r in summary.unsuccessful] == ["1"]


def test_minimised_objectives_rank_lowest_first(tmp_path: Path) -> None:
    _job(tmp_path, 0, ["a=1"], _ok(0.5, 0.1, mode="min"))
    _job(tmp_path, 1, ["a=2"], _ok(0.2, 0.1, mode="min"))
    summary = summarize(tmp_path)
    assert [r.job for r in summary.rows] == ["1", "0"]
    assert summary.mode == "min"


def test_summary_files_hold_every_job_and_the_best_mark(sweep: Path) -> None:
    csv_path, md_path = summarize(sweep).write()
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["job"] for r in rows] == ["2", "0", "1", "3", "4"]
    assert rows[0]["best"] == "*" and rows[0]["val/acc"] == "0.95" and rows[0]["test/acc"] == "0.93"
    assert rows[0]["overrides"] == "optimizer.lr=0.3 debug=limit"
    assert rows[2]["status"] == "failed" and rows[2]["error"].endswith("ValueError: boom")
    md = md_path.read_text()
    assert "- every job: debug=limit" in md
    assert "- jobs: 2 ok, 1 failed, 1 running, 1 missing" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 5
    assert "| *    | 2   | optimizer.lr=0.3" in table[2]
    assert "failed: run failed on rank 0 in fit at epoch 1, step 9: ValueError: boom" in table[4]
    assert len({len(line) for line in table}) == 1  # aligned columns


def test_mlflow_run_ids_are_listed_when_the_jobs_have_them(sweep: Path) -> None:
    assert "mlflow_run_id" not in summarize(sweep).to_csv()  # no column for sweeps without MLflow
    (sweep / "0" / "mlflow_run_id").write_text("run0")
    (sweep / "3" / "mlflow_run_id").write_text("run3\n")  # still running: its run exists already
    (sweep / "mlflow_parent_run_id").write_text("parent")
    summary = summarize(sweep)
    rows = list(csv.DictReader(summary.to_csv().splitlines()))
    assert {r["job"]: r["mlflow_run_id"] for r in rows} == {"2": "", "0": "run0", "1": "", "3": "run3", "4": ""}
    md = summary.to_markdown()
    assert "- MLflow: the jobs are child runs of run parent" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert table[0].rstrip(" |").endswith("mlflow_run_id") and "| run0" in table[3]
    assert len({len(line) for line in table}) == 1


def test_a_sweep_whose_jobs_were_interrupted_says_so(sweep: Path) -> None:
    assert summarize(sweep, unfinished="interrupted").rows[3].status == "interrupted"


def test_dtrain_summary_writes_the_files_of_a_running_sweep(sweep: Path) -> None:
    script = Path(sys.executable).parent / "dtrain-summary"
    proc = subprocess.run([str(script), str(sweep)], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| running" in proc.stdout and "| missing" in proc.stdout
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.md").is_file()


def test_dtrain_summary_rejects_a_folder_that_is_not_a_sweep(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "dtrain-summary"
    proc = subprocess.run([str(script), str(tmp_path)], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 2
    assert "is not a sweep folder" in proc.stderr and "Traceback" not in proc.stderr
