"""Launcher presets: joblib (parallel, DataLoader workers inside jobs), submitit local, SLURM."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from declarative_train.cli import _register, config_dir
from tests.conftest import CLIResult

QUICK = ["debug=limit", "logger=none"]


def _check_sweep(sweep: Path, jobs: int) -> list[dict[str, str]]:
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == [str(i) for i in range(jobs)]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == jobs and all(row["status"] == "ok" for row in rows), rows
    assert (sweep / "summary.md").is_file()
    return rows


@pytest.mark.slow
def test_joblib_jobs_run_in_parallel_processes_with_dataloader_workers(
    run_cli: Callable[..., CLIResult], tmp_path: Path,
) -> None:
    result = run_cli("-m", "hydra/launcher=parallel", "optimizer.lr=0.01,0.02", "data.num_workers=2",
                     "data.persistent_workers=true", *QUICK, "hydra.sweep.dir=sweep", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    _check_sweep(tmp_path / "sweep", 2)


@pytest.mark.slow
def test_submitit_local_jobs_each_get_a_folder_and_the_sweep_a_summary(
    run_cli: Callable[..., CLIResult], tmp_path: Path,
) -> None:
    result = run_cli("-m", "hydra/launcher=local", "optimizer.lr=0.01,0.02", *QUICK, "hydra.sweep.dir=sweep", timeout=600)
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    _check_sweep(sweep, 2)
    assert (sweep / ".submitit").is_dir()


def _launcher(*overrides: str) -> Any:
    _register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=True).hydra.launcher
    finally:
        GlobalHydra.instance().clear()


def test_local_presets_pick_their_launchers() -> None:
    parallel = _launcher("hydra/launcher=parallel")
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == 2
    local = _launcher("hydra/launcher=local")
    assert local._target_.endswith("LocalLauncher") and local.tasks_per_node == 1


def test_slurm_preset_asks_one_task_per_device_and_requeues_on_timeout(tmp_path: Path) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    launcher = _launcher("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "accelerator.devices=4",
                         "accelerator.num_nodes=2")
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.max_num_timeout == 3 and launcher.signal_delay_s == 120
    # The sbatch header submitit writes from these settings (as Hydra's launcher maps them).
    sbatch = _make_sbatch_string(
        command="python -m submitit.core._submit", folder=str(tmp_path), partition=launcher.partition,
        time=launcher.timeout_min, nodes=launcher.nodes, ntasks_per_node=launcher.tasks_per_node,
        gpus_per_node=launcher.gpus_per_node, cpus_per_task=launcher.cpus_per_task, mem=f"{launcher.mem_gb}GB",
        signal_delay_s=launcher.signal_delay_s, additional_parameters=dict(launcher.additional_parameters),
    )
    for flag in ("--partition=gpu", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--time=240",
                 "--signal=USR2@120", "--requeue"):
        assert f"#SBATCH {flag}" in sbatch, flag


def _first_batch_size_in_a_worker(restore: bool) -> int:
    from declarative_train.data import Digits
    from declarative_train.sweep.job import restore_start_method

    if restore:
        restore_start_method()  # what every sweep job does first
    data = Digits(batch_size=8, num_workers=1)
    data.setup()
    return len(next(iter(data.dataloader("train")))[0])


def test_dataloader_workers_start_inside_a_joblib_worker() -> None:
    from joblib import Parallel, delayed

    # Two jobs so joblib really uses loky worker processes (one job would run in this process).
    assert Parallel(n_jobs=2, backend="loky", timeout=300)(
        delayed(_first_batch_size_in_a_worker)(restore=True) for _ in range(2)) == [8, 8]
