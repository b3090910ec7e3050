"""``dtrain accelerator.strategy=fsdp`` as a real job meets it: preempted, killed, swept, in float16.

Real ``dtrain`` processes on 2 CPU ranks (gloo). The GPT preset (token embedding and head tied)
is preempted by a SIGTERM to ``dtrain``, requeued with ``resume=auto``, SIGKILLed, resumed again,
and must end bit for bit where one uninterrupted run ends; ``dtrain-eval`` of its best sharded
folder gives its test metrics. A ``-m`` sweep of FSDP jobs leaves one folder per job, and its
``16-mixed`` job (float16 parameters in FSDP2, GradScaler) trains like ``16-mixed`` under DDP.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train.checkpoint import read
from tests.conftest import cli_env
from tests.distributed._procs import only_run_dir, results, run
from tests.e2e.resume_helpers import KILLER, REPO, train_losses

pytestmark = pytest.mark.ddp
MODULE = ["-m", "declarative_train"]
TWO = ["accelerator=cpu", "accelerator.devices=2"]
FSDP = [*TWO, "accelerator.strategy=fsdp"]
#: A tiny GPT on one standard module's source: 2 epochs of 12 steps, validation (and a top-k save)
#: after steps 6 and 12 of each epoch, last.ckpt every 5 steps as well.
GPT = ["experiment=gpt_text", "data.modules=[textwrap]", "data.block_size=32", "data.batch_size=16",
       "model.net.n_embd=32", "model.net.n_head=2", "trainer.max_epochs=2", "trainer.limit_train_batches=12",
       "trainer.limit_val_batches=3", "trainer.limit_test_batches=3", "trainer.val_check_interval=0.5",
       "trainer.log_every_n_steps=1", "trainer.deterministic=true", "callbacks.model_checkpoint.every_n_train_steps=5",
       "~callbacks.progress_bar"]
STEPS_PER_EPOCH = 12
PREEMPT = ["user_packages=[tests]", "+callbacks.stop._target_=tests.distributed.launcher_signal.SignalLauncher"]
TIED = ("net.tok_emb.weight", "net.head.weight")


def gpt_run(run_dir: Path, *args: str) -> tuple[int, str]:
    """``dtrain`` of the tiny GPT on 2 FSDP ranks into ``run_dir``: exit code and stderr."""
    rc, _, err = run([*MODULE, *FSDP, *GPT, f"hydra.run.dir={run_dir}", *args], run_dir.parent,
                     env={"PYTHONPATH": str(REPO)}, timeout=300)
    return rc, err


def last(run_dir: Path) -> dict[str, Any]:
    """The run's ``last.ckpt`` (a sharded folder), read whole in this process."""
    return read(str(run_dir / "checkpoints" / "last.ckpt"))


def assert_sharded(folder: Path) -> None:
    assert folder.is_dir() and (folder / "manifest.json").is_file(), folder
    assert sorted(p.name for p in folder.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]


def assert_bit_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Loop position, weights, optimizer state and metric state equal bit for bit."""
    assert a["loop"]["global_step"] == b["loop"]["global_step"]
    assert a["metrics"] == b["metrics"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for pid, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][pid][name]), (pid, name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT trained on 2 FSDP ranks without interruption."""
    run_dir = tmp_path_factory.mktemp("fsdp_gpt") / "reference"
    rc, err = gpt_run(run_dir)
    assert rc == 0, err
    return run_dir


def test_gpt_preempted_requeued_killed_and_resumed_ends_bit_identical(reference: Path, tmp_path: Path) -> None:
    # SIGTERM to dtrain after step 8 (as a scheduler sends it): the workers stop, dtrain exits 143.
    preempted = tmp_path / "preempted"
    rc, err = gpt_run(preempted, *PREEMPT, "+callbacks.stop.after_step=8")
    assert rc == 128 + signal.SIGTERM, err
    assert f"workers stopped; continue from the newest last.ckpt with resume=auto resume_dir={preempted}" in err
    assert results(preempted)["status"] == "interrupted"
    assert_sharded(preempted / "checkpoints" / "last.ckpt")
    loop = last(preempted)["loop"]
    # Rank 0 held the run at step 8: the save after step 6's validation, or step 5's if 6's write was cut off.
    assert (loop["epoch"], loop["global_step"], loop["batch_idx"]) in {(0, 5, 5), (0, 6, 6)}

    # The requeued job continues from there; both ranks are SIGKILLed after step 19 (saves at 10, 12, 15, 18).
    requeued = tmp_path / "requeued"
    rc, err = gpt_run(requeued, "resume=auto", f"resume_dir={preempted}", *KILLER, "+callbacks.killer.after_step=19")
    assert rc == 1 and "was killed by SIGKILL" in err, err
    assert f"resume=auto: resuming from {preempted / 'checkpoints' / 'last.ckpt'}" in (requeued / "train.log").read_text()
    killed_at = last(requeued)["loop"]
    # Step 18's save (after that validation), or step 15's when 18's background write was still in flight.
    assert (killed_at["epoch"], killed_at["global_step"], killed_at["batch_idx"]) in {(1, 15, 3), (1, 18, 6)}

    resumed = tmp_path / "resumed"
    rc, err = gpt_run(resumed, f"ckpt_path={requeued / 'checkpoints' / 'last.ckpt'}")
    assert rc == 0, err
    final, want = last(resumed), last(reference)
    assert final["loop"]["global_step"] == 2 * STEPS_PER_EPOCH
    assert_bit_identical(final, want)
    assert torch.equal(final["state_dict"][TIED[0]], final["state_dict"][TIED[1]])  # still one tensor
    after = {s: v for s, v in train_losses(reference).items() if s > killed_at["global_step"]}
    losses = train_losses(resumed)
    assert after and {s: losses[s] for s in after} == after
    assert results(resumed)["test"] == results(reference)["test"]


def test_dtrain_eval_of_the_best_sharded_folder_reproduces_the_test_metrics(reference: Path, tmp_path: Path) -> None:
    trained = results(reference)
    best = Path(trained["best_model_path"])
    assert trained["tested_ckpt_path"] == str(best) and best.name != "last.ckpt"
    assert_sharded(best)
    proc = subprocess.run([str(Path(sys.executable).parent / "dtrain-eval"), f"ckpt_path={best}"], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    evaluated = results(only_run_dir(tmp_path))["test"]
    assert set(evaluated) == {"test/loss", "test/perplexity"}
    assert evaluated == pytest.approx(trained["test"], rel=1e-6)


#: The default MLP on digits, 2 epochs of 3 steps; ranks of 32 samples.
SMALL = ["debug=limit", "logger=none", "data.batch_size=32", "~callbacks.progress_bar"]


def test_a_sweep_of_fsdp_jobs_and_its_16_mixed_job_matches_ddp(tmp_path: Path) -> None:
    rc, _, err = run([*MODULE, "-m", "precision=32,16-mixed", *FSDP, *SMALL], tmp_path / "sweep", timeout=400)
    assert rc == 0, err
    (sweep,) = (tmp_path / "sweep" / "outputs" / "sweeps").iterdir()
    jobs = {p.name: p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert sorted(jobs) == ["0", "1"]
    for job in jobs.values():
        assert results(job)["status"] == "ok" and results(job)["global_step"] == 6
        saved = sorted((job / "checkpoints").iterdir())
        assert job / "checkpoints" / "last.ckpt" in saved and len(saved) >= 2, saved
        for folder in saved:
            assert_sharded(folder)
        assert "[rank 1]" in (job / "train.log").read_text()
    rows = {row["job"]: row for row in csv.DictReader((sweep / "summary.csv").open())}
    assert sorted(rows) == ["0", "1"] and all(row["status"] == "ok" for row in rows.values())
    assert rows["0"]["overrides"].startswith("precision='32' ") and rows["1"]["overrides"].startswith("precision=16-mixed ")

    rc, _, err = run([*MODULE, *TWO, "accelerator.strategy=ddp", "precision=16-mixed", *SMALL], tmp_path / "ddp")
    assert rc == 0, err
    ddp_dir = only_run_dir(tmp_path / "ddp")
    fsdp16, ddp16 = results(jobs["1"]), results(ddp_dir)
    # Both compute the same float16 matmuls (FSDP2 casts the gathered parameters, DDP's autocast the
    # weights) and reduce float32 gradients; only the float32 summation order of the reduction may
    # differ (~1e-7 relative). The tolerances are far below what float16 changes: the float32 job's
    # weights are ~5e-3 away after these 6 steps (checked below, so a float32 FSDP job would fail).
    for stage in ("val", "test"):
        assert fsdp16[stage] == pytest.approx(ddp16[stage], rel=1e-6), stage
    fsdp_state, ddp_state = (read(str(path / "checkpoints" / "last.ckpt")) for path in (jobs["1"], ddp_dir))
    assert fsdp_state["precision"] == ddp_state["precision"] and fsdp_state["precision"]["scale"] > 0  # GradScaler's
    for key, value in ddp_state["state_dict"].items():
        torch.testing.assert_close(fsdp_state["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    fp32_weights = read(str(jobs["0"] / "checkpoints" / "last.ckpt"))["state_dict"]
    assert max(float((fp32_weights[k] - v).abs().max()) for k, v in fsdp_state["state_dict"].items()) > 1e-3
