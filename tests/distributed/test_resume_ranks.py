"""Killed mid-epoch and resumed on 2 ranks with dropout: every rank resumes its own random streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from declarative_train.checkpoint import read
from tests.e2e.resume_helpers import KILLER, assert_same_training_state, dtrain, train_losses

pytestmark = pytest.mark.ddp
TWO = ["accelerator=cpu", "accelerator.devices=2", "data.batch_size=32"]  # the default MLP has dropout 0.1


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_run_killed_mid_epoch_resumes_bit_identically_with_dropout(tmp_path: Path, strategy: str) -> None:
    args = [*TWO, f"accelerator.strategy={strategy}"]
    reference = tmp_path / "reference"
    proc = dtrain(reference, *args)
    assert proc.returncode == 0, proc.stderr
    killed = tmp_path / "killed"
    proc = dtrain(killed, *args, *KILLER, "+callbacks.killer.after_step=31")
    assert proc.returncode == 1, proc.stderr
    last = killed / "checkpoints" / "last.ckpt"
    saved = read(str(last))
    assert 0 < saved["loop"]["batch_idx"] < 20 and len(saved["rng"]["ranks"]) == 2
    resumed = tmp_path / "resumed"
    proc = dtrain(resumed, *args, f"ckpt_path={last}")
    assert proc.returncode == 0, proc.stderr
    assert_same_training_state(read(str(resumed / "checkpoints" / "last.ckpt")),
                               read(str(reference / "checkpoints" / "last.ckpt")))
    after = {s: v for s, v in train_losses(reference).items() if s > saved["loop"]["global_step"]}
    assert {s: train_losses(resumed)[s] for s in after} == after
