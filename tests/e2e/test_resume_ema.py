"""A ``dtrain`` run with the EMA callback, SIGKILLed mid-epoch and resumed, ends bit-identical."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from tests.e2e.resume_helpers import KILLER, assert_same_training_state, dtrain, load, results

EMA = ["+callbacks.ema._target_=declarative_train.callbacks.EMA", "+callbacks.ema.decay=0.9",
       "+callbacks.ema.update_every=2", "+callbacks.ema.warmup=true"]


@pytest.mark.slow
def test_sigkill_then_resume_with_ema_is_bit_identical(tmp_path: Path) -> None:
    reference, killed, resumed = tmp_path / "reference", tmp_path / "killed", tmp_path / "resumed"
    assert (proc := dtrain(reference, *EMA)).returncode == 0, proc.stderr
    proc = dtrain(killed, *EMA, *KILLER, "+callbacks.killer.after_step=31")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    last = killed / "checkpoints" / "last.ckpt"
    assert 0 < load(last)["callbacks"]["ema"]["num_updates"] < 20
    assert (proc := dtrain(resumed, *EMA, f"ckpt_path={last}")).returncode == 0, proc.stderr
    ref, res = load(reference / "checkpoints" / "last.ckpt"), load(resumed / "checkpoints" / "last.ckpt")
    assert_same_training_state(res, ref)  # the model weights in the files are the averages
    assert res["callbacks"]["ema"]["num_updates"] == ref["callbacks"]["ema"]["num_updates"] == 30
    for part in ("averaged", "training_weights"):
        for name, value in ref["callbacks"]["ema"][part].items():
            assert torch.equal(res["callbacks"]["ema"][part][name], value), (part, name)
    assert results(resumed)["test"] == results(reference)["test"]
    assert results(resumed)["val"] == results(reference)["val"]
