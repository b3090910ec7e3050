"""Whole sweeps through the real ``dtrain -m``: failures, Optuna, keep_going, resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLIResult, cli_env

QUICK = ["debug=limit", "logger=none"]


def _csv(sweep: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep / "summary.csv").open()))


def _results(job: Path) -> dict:
    return json.loads((job / "results.json").read_text())


def test_a_failing_grid_point_does_not_stop_the_others(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    # lr=-1 fails when the optimizer is built; max_epochs=-1 without max_steps is an invalid config.
    result = run_cli("-m", "optimizer.lr=0.01,-1", "trainer.max_epochs=2,-1", *QUICK, "hydra.sweep.dir=sweep")
    assert result.returncode == 1
    assert "3 of 4 sweep jobs did not succeed" in result.stderr
    assert "Traceback" not in result.stderr.split("Error executing job")[-1].split("\n", 2)[-1]
    sweep = tmp_path / "sweep"
    rows = {row["overrides"]: row for row in _csv(sweep)}
    ok = rows["optimizer.lr=0.01 trainer.max_epochs=2 debug=limit logger=none"]
    assert ok["status"] == "ok" and ok["best"] == "*" and float(ok["test/acc"]) > 0
    bad_lr = rows["optimizer.lr=-1 trainer.max_epochs=2 debug=limit logger=none"]
    assert bad_lr["status"] == "failed" and "Invalid learning rate: -1" in bad_lr["error"]
    bad_cfg = rows["optimizer.lr=0.01 trainer.max_epochs=-1 debug=limit logger=none"]
    assert bad_cfg["status"] == "failed" and bad_cfg["error"].startswith("invalid configuration: trainer.max_epochs")
    assert "failed: " in result.stdout  # the table printed at the end
    assert (sweep / "summary.md").read_text().count("| failed") == 3


def test_keep_going_false_skips_the_jobs_after_a_failure(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    result = run_cli("-m", "optimizer.lr=-1,0.01,0.02", "sweep.keep_going=false", *QUICK, "hydra.sweep.dir=sweep")
    assert result.returncode == 1
    statuses = {row["job"]: (row["status"], row["error"]) for row in _csv(tmp_path / "sweep")}
    assert statuses["0"][0] == "failed"
    assert statuses["1"] == ("skipped", "not run: job 0 failed and sweep.keep_going=false")
    assert statuses["2"][0] == "skipped"


def test_optuna_summary_best_row_is_the_best_trial(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    result = run_cli("hparams_search=digits_optuna", "hydra.sweeper.n_trials=4", *QUICK, "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    rows = _csv(sweep)
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows)
    top = rows[0]
    assert top["best"] == "*"
    assert float(top["val/acc"]) == pytest.approx(best["best_value"])
    for key, value in best["best_params"].items():
        assert f"{key}={value}".replace(" ", "") in top["overrides"].split(), (key, value, top["overrides"])
    # The job returned the same value the summary ranks by.
    assert _results(sweep / top["job"])["objective"] == {"name": "val/acc", "value": best["best_value"], "mode": "max"}


def test_a_failed_optuna_trial_is_recorded_and_the_search_goes_on(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    result = run_cli("hparams_search=digits_optuna", "hydra.sweeper.n_trials=3", "optimizer.lr=choice(0.01,-1)",
                     *QUICK, "hydra.sweep.dir=sweep")
    assert result.returncode == 1  # some trial failed: the sweep reports it
    sweep = tmp_path / "sweep"
    rows = _csv(sweep)
    assert len(rows) == 3
    failed = [row for row in rows if row["status"] == "failed"]
    assert failed and all("Invalid learning rate" in row["error"] for row in failed)
    assert "Failed experiment" in result.stdout + result.stderr  # Optuna marked the trial failed
    if len(failed) < 3:
        assert (sweep / "optimization_results.yaml").is_file()


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_only_what_is_missing(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "declarative_train", "-m", "optimizer.lr=0.01,0.02,0.03,0.04", "trainer.max_epochs=30",
            "trainer.limit_train_batches=10", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
            "data.batch_size=16", "logger=none", "hydra.sweep.dir=sweep"]
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(args, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (sweep / "2" / "checkpoints" / "last.ckpt").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "job 2 never saved last.ckpt"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # Ctrl-C while job 2 trains
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"hydra.sweep.dir={sweep}" in err or "hydra.sweep.dir=sweep" in err
    statuses = {row["job"]: row["status"] for row in _csv(sweep)}
    assert statuses == {"0": "ok", "1": "ok", "2": "interrupted", "3": "missing"}
    finished = {job: (sweep / job / "results.json").read_bytes() for job in ("0", "1")}

    rerun = subprocess.run([*args, "sweep.resume=true"], cwd=tmp_path, env=cli_env(), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert {job: (sweep / job / "results.json").read_bytes() for job in ("0", "1")} == finished
    logs = {job: (sweep / job / "train.log").read_text() for job in ("0", "1", "2", "3")}
    assert "finished before: not run again" in logs["0"] and "finished before: not run again" in logs["1"]
    assert "sweep.resume: resuming from" in logs["2"] and "last.ckpt" in logs["2"]
    assert "sweep.resume" not in logs["3"]
    assert all(row["status"] == "ok" for row in _csv(sweep))
    assert _results(sweep / "2")["epochs"] == 30 and _results(sweep / "3")["epochs"] == 30


def test_resuming_with_other_overrides_is_refused(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    first = run_cli("-m", "optimizer.lr=0.01,0.02", "trainer.fast_dev_run=true", "logger=none", "hydra.sweep.dir=sweep")
    assert first.returncode == 0, first.stderr
    again = run_cli("-m", "optimizer.lr=0.01,0.05", "trainer.fast_dev_run=true", "logger=none", "hydra.sweep.dir=sweep",
                    "sweep.resume=true")
    assert again.returncode == 2
    assert "sweep.resume: " in again.stderr and "resume with the same overrides" in again.stderr
    assert "Traceback" not in again.stderr


def test_hydra_overrides_of_a_preset_are_not_reported_as_unknown(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", "trainer.max_epoch=3", "sweep.direction=up")
    assert result.returncode == 2
    assert "trainer.max_epoch: unknown key" in result.stderr
    assert "sweep.direction: 'up' is not one of" in result.stderr
    assert "hydra.sweeper" not in result.stderr
