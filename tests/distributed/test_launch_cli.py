"""``dtrain`` with real worker processes (gloo on CPU): DDP, failures, restarts, sweeps, ddp_spawn."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from declarative_train.distributed.plan import make_plan
from declarative_train.launch import spawn
from tests.distributed._procs import (
    DDP,
    SMALL,
    finish,
    only_run_dir,
    results,
    run,
    start,
    stop,
    wait_for,
)

pytestmark = pytest.mark.ddp
MODULE = ["-m", "declarative_train"]


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])


def test_two_workers_with_loader_workers_train_like_one_process_with_the_global_batch(tmp_path: Path) -> None:
    # 19 full global batches of 64 per epoch (digits has 1257 training samples), no dropout.
    common = ["trainer.max_epochs=2", "trainer.limit_train_batches=19", "model.net.dropout=0.0", "test=false"]
    rc, _, err = run([*MODULE, *DDP, "data.batch_size=32", "data.num_workers=2", *common], tmp_path / "ddp")
    assert rc == 0, err
    rc, _, err = run([*MODULE, "data.batch_size=64", "logger=none", *common], tmp_path / "one")
    assert rc == 0, err
    ddp_dir, one_dir = only_run_dir(tmp_path / "ddp"), only_run_dir(tmp_path / "one")
    ddp_state, one_state = _state(ddp_dir), _state(one_dir)
    for key in one_state:
        torch.testing.assert_close(ddp_state[key], one_state[key], atol=1e-5, rtol=1e-4)
    assert results(ddp_dir)["global_step"] == results(one_dir)["global_step"] == 38
    assert results(ddp_dir)["val"]["val/acc"] == pytest.approx(results(one_dir)["val"]["val/acc"], abs=1e-3)
    # One folder, .hydra written once by the launching process, every rank in the one train.log.
    assert sorted(p.name for p in (ddp_dir / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    log = (ddp_dir / "train.log").read_text()
    assert "[rank 0]" in log and "[rank 1]" in log
    events = list((ddp_dir / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1  # TensorBoard from rank 0 only


def _worker_pid(run_dir: Path, rank: int) -> int | None:
    log = run_dir / "train.log"
    match = re.search(rf"worker rank {rank} of 2 \(pid (\d+)", log.read_text()) if log.is_file() else None
    return int(match.group(1)) if match else None


def _kill_rank_1_after_the_first_checkpoint(tmp_path: Path) -> Path:
    """SIGKILL worker rank 1 of the run under ``tmp_path`` once ``last.ckpt`` exists; return the run folder."""
    wait_for(lambda: len(list((tmp_path / "outputs" / "runs").glob("*/checkpoints/last.ckpt"))) == 1,
             120, "the first checkpoint")
    run_dir = only_run_dir(tmp_path)
    pid = _worker_pid(run_dir, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return run_dir


def test_killing_a_worker_ends_the_run_with_exit_1_naming_the_rank(tmp_path: Path) -> None:
    proc = start([*MODULE, *DDP, "trainer.max_epochs=1000", "logger=none", "data.num_workers=2"], tmp_path)
    try:
        run_dir = _kill_rank_1_after_the_first_checkpoint(tmp_path)
        killed = time.monotonic()
        rc, _, err = finish(proc, timeout=60)
    finally:
        stop(proc)
    assert time.monotonic() - killed < 30
    assert rc == 1
    assert "worker rank 1" in err and "SIGKILL" in err
    assert results(run_dir)["status"] == "failed"
    assert "rank 1" in results(run_dir)["error"]


def test_elastic_restart_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    proc = start([*MODULE, *DDP, "accelerator.max_restarts=1", "trainer.max_epochs=30", "logger=none"], tmp_path)
    try:
        run_dir = _kill_rank_1_after_the_first_checkpoint(tmp_path)
        rc, _, err = finish(proc, timeout=180)
    finally:
        stop(proc)
    assert rc == 0, err
    log = (run_dir / "train.log").read_text()
    assert "elastic restart 1: resuming from" in log
    assert results(run_dir)["status"] == "ok"
    assert results(run_dir)["epochs"] == 30


def test_sigterm_to_dtrain_stops_the_workers_and_resume_auto_continues(tmp_path: Path) -> None:
    args = [*MODULE, *DDP, "trainer.max_epochs=30", "logger=none"]
    proc = start(args, tmp_path / "first")
    try:
        wait_for(lambda: len(list((tmp_path / "first" / "outputs" / "runs").glob("*/checkpoints/last.ckpt"))) == 1,
                 120, "the first checkpoint")
        proc.send_signal(signal.SIGTERM)
        rc, _, err = finish(proc, timeout=60)
    finally:
        stop(proc)
    assert rc == 128 + signal.SIGTERM, err
    run_dir = only_run_dir(tmp_path / "first")
    assert results(run_dir)["status"] == "interrupted"
    rc, _, err = run([*args, "resume=auto", f"resume_dir={run_dir}"], tmp_path / "second")
    assert rc == 0, err
    resumed = only_run_dir(tmp_path / "second")
    assert "resume=auto: resuming from" in (resumed / "train.log").read_text()
    assert results(resumed)["epochs"] == 30


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_sweep_of_ddp_jobs_leaves_exactly_one_folder_per_job(tmp_path: Path, launcher: str) -> None:
    rc, _, err = run([*MODULE, "-m", "optimizer.lr=0.01,0.1", *DDP, *SMALL, f"hydra/launcher={launcher}"], tmp_path)
    assert rc == 0, err
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    for job in jobs:
        assert results(sweep / job)["status"] == "ok"
        assert "[rank 1]" in (sweep / job / "train.log").read_text()
    assert not (tmp_path / "outputs" / "runs").exists()


def test_ddp_spawn_returns_the_trained_weights_to_the_parent(compose_cfg, tmp_path: Path) -> None:
    from declarative_train.build import build, seed_everything

    cfg = compose_cfg([*SMALL, "accelerator.devices=2", "accelerator.strategy=ddp_spawn", "accelerator.timeout_s=60"])
    outcome = spawn.launch(cfg, make_plan(cfg.accelerator))
    assert outcome.results["status"] == "ok" and outcome.results["global_step"] == 6
    assert outcome.state_dict is not None
    trained = _state(Path(cfg.paths.output_dir))
    seed_everything(cfg.seed)
    initial = build(cfg).task.state_dict()
    for key, value in trained.items():
        assert torch.equal(outcome.state_dict[key], value)
    assert any(not torch.equal(initial[k], trained[k]) for k in trained)
