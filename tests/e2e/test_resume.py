"""Kill real ``dtrain`` processes (SIGKILL, SIGTERM) and resume them: nothing lost, nothing different.

Every resumed run must end with parameters and optimizer state bit-identical to an uninterrupted
run (CPU, deterministic mode), log the same training losses from its resume point on, and reach
the same best checkpoint score and test metrics.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from declarative_train.cli import EXIT_PREEMPTED
from tests.e2e.resume_helpers import (
    assert_same_training_state,
    dtrain,
    killed_run,
    load,
    results,
    start,
    train_losses,
    wait_for,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = dtrain(run_dir)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def _resume_and_compare(reference: Path, killed: Path, resumed: Path, *how: str) -> dict[str, object]:
    """Resume ``killed`` into ``resumed``; assert it ends exactly like ``reference``."""
    start = load(killed / "checkpoints" / "last.ckpt")["loop"]["global_step"]
    proc = dtrain(resumed, *how)
    assert proc.returncode == 0, proc.stderr
    final = resumed / "checkpoints" / "last.ckpt"
    if not final.exists():  # the killed run had finished: nothing left to train
        final = killed / "checkpoints" / "last.ckpt"
    assert_same_training_state(load(final), load(reference / "checkpoints" / "last.ckpt"))
    ref_losses, losses = train_losses(reference), train_losses(resumed)
    after = {s: v for s, v in ref_losses.items() if s > start}
    assert {s: losses[s] for s in after} == after  # the same values, not approximately
    ref, res = results(reference), results(resumed)
    assert res["best_model_score"] == ref["best_model_score"]
    assert Path(res["best_model_path"]).name == Path(ref["best_model_path"]).name
    assert res["test"] == ref["test"] and res["val"] == ref["val"]
    return {"start": start, "results": res}


def test_sigkill_mid_epoch_then_resume_is_bit_identical(reference: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    proc = killed_run(killed, "after_step=31")
    assert proc.returncode == -signal.SIGKILL
    checkpoint = load(killed / "checkpoints" / "last.ckpt")["loop"]
    # The newest save the background writer finished before the kill, one step after step 30's
    # validation: that candidate (step 30), or, when its write was still in flight, the
    # every_n_train_steps=7 save of step 28. Both are mid-epoch.
    assert (checkpoint["global_step"], checkpoint["epoch"], checkpoint["batch_idx"]) in {(30, 1, 10), (28, 1, 8)}
    outcome = _resume_and_compare(reference, killed, tmp_path / "resumed",
                                  f"ckpt_path={killed / 'checkpoints' / 'last.ckpt'}")
    # Resumed into a new folder, the top-k table still knows the killed run's files.
    table = load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")["callbacks"]["model_checkpoint"]["best_k_models"]
    assert len(table) == 2
    assert outcome["start"] == checkpoint["global_step"]


def test_sigterm_saves_last_ckpt_at_the_step_boundary_and_exits_75(tmp_path: Path) -> None:
    run_dir = tmp_path / "preempted"
    proc = killed_run(run_dir, "after_step=33", "signal_name=SIGTERM")
    assert proc.returncode == EXIT_PREEMPTED, proc.stderr
    assert "SIGTERM received: saved" in proc.stderr
    saved = load(run_dir / "checkpoints" / "last.ckpt")
    assert saved["loop"]["global_step"] == 33  # the step during which the signal came
    summary = results(run_dir)
    assert summary["status"] == "preempted"
    assert summary["resume_ckpt_path"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert "test" not in summary or not summary["test"]


@pytest.mark.slow
def test_sigterm_then_resume_auto_is_bit_identical(reference: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "job"
    proc = killed_run(run_dir, "after_step=33", "signal_name=SIGTERM")
    assert proc.returncode == EXIT_PREEMPTED, proc.stderr
    resumed = tmp_path / "requeued"
    _resume_and_compare(reference, run_dir, resumed, "resume=auto", f"resume_dir={run_dir}")


@pytest.mark.slow
def test_second_signal_exits_at_once_without_saving(tmp_path: Path) -> None:
    run_dir = tmp_path / "twice"
    proc = killed_run(run_dir, "after_step=33", "signal_name=SIGTERM", "times=2")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    # A previous save: after step 30's validation, or step 28's when that write was still in flight.
    assert load(run_dir / "checkpoints" / "last.ckpt")["loop"]["global_step"] in {28, 30}
    assert results(run_dir)["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["in_validation=3", "in_checkpoint_write=5"])
def test_sigkill_in_validation_or_checkpoint_write_then_resume(reference: Path, tmp_path: Path, point: str) -> None:
    killed = tmp_path / "killed"
    proc = killed_run(killed, point)
    assert proc.returncode == -signal.SIGKILL
    checkpoints = killed / "checkpoints"
    load(checkpoints / "last.ckpt")  # the previous last.ckpt is intact
    if point.startswith("in_checkpoint_write"):
        assert list(checkpoints.glob(".*.tmp"))  # the write was cut off
    _resume_and_compare(reference, killed, tmp_path / "resumed", f"ckpt_path={checkpoints / 'last.ckpt'}")


@pytest.mark.slow
def test_resume_into_the_same_folder_cleans_up_and_continues(reference: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "job"
    proc = killed_run(run_dir, "in_checkpoint_write=5")
    assert proc.returncode == -signal.SIGKILL
    assert list((run_dir / "checkpoints").glob(".*.tmp"))
    _resume_and_compare(reference, run_dir, run_dir, "resume=auto")
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_a_random_moment_then_resume(reference: Path, tmp_path: Path, trial: int) -> None:
    killed = tmp_path / "killed"
    proc = start(killed)
    if not wait_for(killed / "checkpoints" / "last.ckpt", proc):
        pytest.fail(f"the run ended before its first checkpoint: {proc.stderr.read() if proc.stderr else ''}")
    time.sleep(random.Random(trial).uniform(0.0, 0.3))
    proc.kill()  # SIGKILL, wherever it is: a step, a validation, a checkpoint write
    proc.communicate(timeout=60)
    _resume_and_compare(reference, killed, tmp_path / "resumed", "resume=auto", f"resume_dir={killed}")


@pytest.mark.slow
def test_sigterm_from_outside_like_a_scheduler(tmp_path: Path) -> None:
    job = tmp_path / "job"
    proc = start(job, "trainer.max_epochs=30")
    assert wait_for(job / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, stderr
    saved = load(job / "checkpoints" / "last.ckpt")
    assert results(job)["status"] == "preempted"
    again = dtrain(job, "trainer.max_epochs=30", "resume=auto")  # the requeued job: same command line
    assert again.returncode == 0, again.stderr
    assert load(job / "checkpoints" / "last.ckpt")["loop"]["global_step"] == 30 * 20 > saved["loop"]["global_step"]
