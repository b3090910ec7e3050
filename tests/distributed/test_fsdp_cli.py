"""``dtrain accelerator.strategy=fsdp`` as real processes: against DDP, killed and resumed, resumed in one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train.checkpoint import read
from tests.conftest import cli_env
from tests.distributed._procs import only_run_dir, results, run
from tests.e2e.resume_helpers import assert_same_training_state, dtrain, train_losses

pytestmark = pytest.mark.ddp
MODULE = ["-m", "declarative_train"]
TWO = ["accelerator=cpu", "accelerator.devices=2", "data.batch_size=32"]
FSDP = [*TWO, "accelerator.strategy=fsdp"]
#: Without dropout, so the same checkpoint continued in one process (other random streams) can be
#: compared with the 2-rank run (tests/distributed/test_resume_ranks.py resumes with dropout).
EXACT = [*FSDP, "model.net.dropout=0.0"]
SHORT = ["trainer.max_epochs=2", "trainer.limit_train_batches=10", "model.net.dropout=0.0",
         "trainer.log_every_n_steps=2", "~callbacks.progress_bar"]


def load(path: Path) -> dict[str, Any]:
    """A checkpoint file or sharded folder, read whole in this process."""
    return read(str(path))


def test_fsdp_run_logs_and_tests_like_a_ddp_run(tmp_path: Path) -> None:
    """With ``state_dict_type=full``: rank 0 writes single files of the gathered state."""
    for name, strategy in (("fsdp", "fsdp accelerator.fsdp.state_dict_type=full"), ("ddp", "ddp")):
        rc, _, err = run([*MODULE, *TWO, *f"accelerator.strategy={strategy}".split(), *SHORT], tmp_path / name)
        assert rc == 0, err
    fsdp_dir, ddp_dir = only_run_dir(tmp_path / "fsdp"), only_run_dir(tmp_path / "ddp")
    assert (fsdp_dir / "checkpoints" / "last.ckpt").is_file()
    fsdp, ddp = results(fsdp_dir), results(ddp_dir)
    assert fsdp["status"] == "ok" and fsdp["global_step"] == ddp["global_step"] == 20
    for stage in ("val", "test"):
        assert fsdp[stage] == pytest.approx(ddp[stage], rel=1e-5, abs=1e-6), stage
    fsdp_losses, ddp_losses = train_losses(fsdp_dir), train_losses(ddp_dir)  # averaged over ranks, rank 0 writes
    assert sorted(fsdp_losses) == list(range(2, 21, 2))
    assert fsdp_losses == pytest.approx(ddp_losses, rel=1e-5)
    assert "FSDP: 0 units (none) and the task, mesh (2,)" in (fsdp_dir / "train.log").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted FSDP run (resume_helpers' 3-epoch run with mid-epoch checkpoints)."""
    run_dir = tmp_path_factory.mktemp("fsdp_reference") / "run"
    proc = dtrain(run_dir, *EXACT)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def _killed_run(run_dir: Path) -> subprocess.CompletedProcess[str]:
    """The reference run with both ranks SIGKILLed by tests/e2e/killer.py after step 31 (mid-epoch)."""
    return dtrain(run_dir, *EXACT, "user_packages=[tests]", "+callbacks.killer._target_=tests.e2e.killer.Killer",
                  "+callbacks.killer.after_step=31")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(reference: Path, tmp_path: Path) -> None:
    killed_dir = tmp_path / "killed"
    proc = _killed_run(killed_dir)
    assert proc.returncode == 1, proc.stderr
    last = killed_dir / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in last.iterdir() if p.suffix == ".distcp") == ["__0_0.distcp", "__1_0.distcp"]
    loop = load(last)["loop"]
    assert loop["epoch"] == 1 and 0 < loop["batch_idx"] < 20  # mid-epoch
    resumed_dir = tmp_path / "resumed"
    proc = dtrain(resumed_dir, *EXACT, f"ckpt_path={last}")
    assert proc.returncode == 0, proc.stderr
    assert_same_training_state(load(resumed_dir / "checkpoints" / "last.ckpt"),
                               load(reference / "checkpoints" / "last.ckpt"))
    after = {s: v for s, v in train_losses(reference).items() if s > loop["global_step"]}
    losses = train_losses(resumed_dir)
    assert {s: losses[s] for s in after} == after
    assert json.loads((resumed_dir / "results.json").read_text())["test"] == results(reference)["test"]

    # The same FSDP checkpoint resumes in one process with the global batch (dtrain-style layout).
    single_dir = tmp_path / "single"
    proc = dtrain(single_dir, "accelerator=cpu", "data.batch_size=64", "model.net.dropout=0.0", f"ckpt_path={last}")
    assert proc.returncode == 0, proc.stderr
    single, want = load(single_dir / "checkpoints" / "last.ckpt"), load(reference / "checkpoints" / "last.ckpt")
    assert single["loop"]["global_step"] == want["loop"]["global_step"]
    # Adam's step count went on from the FSDP run's: its state was loaded, not started afresh.
    assert [s["step"] for s in single["optimizer"]["state"].values()] == [s["step"] for s in want["optimizer"]["state"].values()]
    # Close, not equal: an epoch's last global batch differs (2 ranks pad 1257 samples to 1258).
    for key, value in want["state_dict"].items():
        torch.testing.assert_close(single["state_dict"][key], value, atol=5e-3, rtol=1e-2)


def test_eval_of_an_fsdp_checkpoint_in_one_process_reproduces_the_test_metrics(reference: Path, tmp_path: Path) -> None:
    best = results(reference)["best_model_path"]
    # save_top_k=2 of folders saved every 7 steps and at validations: the evicted ones are deleted, no leftovers.
    kept = sorted((reference / "checkpoints").iterdir())
    assert len(kept) == 3 and all(p.is_dir() and (p / "manifest.json").is_file() for p in kept), kept
    assert Path(best) in kept and reference / "checkpoints" / "last.ckpt" in kept
    proc = subprocess.run([str(Path(sys.executable).parent / "dtrain-eval"), f"ckpt_path={best}"], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    evaluated = results(only_run_dir(tmp_path))
    assert evaluated["test"] == pytest.approx(results(reference)["test"], rel=1e-6)

    # dtrain-consolidate writes the same checkpoint as one sealed file.
    single = tmp_path / "best.ckpt"
    proc = subprocess.run([str(Path(sys.executable).parent / "dtrain-consolidate"), best, str(single)],
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_same_training_state(load(single), load(Path(best)))


def test_a_wrap_typo_exits_2_before_any_worker_starts(tmp_path: Path) -> None:
    rc, _, err = run([*MODULE, *FSDP, "accelerator.fsdp.wrap=[Linaer]"], tmp_path)
    assert rc == 2
    assert "accelerator.fsdp.wrap" in err and "Did you mean 'Linear'?" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "outputs" / "runs").glob("*/resolved_config.yaml"))  # no worker was started


def test_fsdp_with_one_device_warns_and_trains_in_one_process(tmp_path: Path) -> None:
    rc, _, err = run([*MODULE, "accelerator=cpu", "accelerator.strategy=fsdp", "debug=limit", "logger=none"], tmp_path)
    assert rc == 0, err
    run_dir = only_run_dir(tmp_path)
    assert "strategy=fsdp with one process: training in this process, nothing sharded" in (run_dir / "train.log").read_text()
    assert results(run_dir)["status"] == "ok"


def test_gpt_preset_under_fsdp_with_activation_checkpointing_matches_ddp(tmp_path: Path) -> None:
    gpt = ["experiment=gpt_text", "trainer.max_epochs=1", "trainer.limit_train_batches=12", "trainer.limit_val_batches=4",
           "trainer.limit_test_batches=4", "logger=none", "~callbacks.progress_bar", *TWO]
    rc, _, err = run([*MODULE, *gpt, "accelerator.strategy=fsdp", "trainer.activation_checkpointing=[TransformerBlock]"],
                     tmp_path / "fsdp")
    assert rc == 0, err
    rc, _, err = run([*MODULE, *gpt, "accelerator.strategy=ddp"], tmp_path / "ddp")
    assert rc == 0, err
    fsdp_dir = only_run_dir(tmp_path / "fsdp")
    fsdp, ddp = results(fsdp_dir), results(only_run_dir(tmp_path / "ddp"))
    assert "FSDP: 2 units (TransformerBlock) and the task" in (fsdp_dir / "train.log").read_text()
    assert set(fsdp["val"]) == {"val/loss", "val/perplexity"}
    for stage in ("val", "test"):
        assert fsdp[stage] == pytest.approx(ddp[stage], rel=1e-5), stage
