"""On 2 DDP ranks, a resume in the middle of an epoch ends it with the uninterrupted run's ``train/loss``.

Each rank sums its own losses over an epoch and the epoch's mean is their all-reduced sum, so a
checkpoint must keep every rank's running sum (``epoch_loss_sum_ranks``): restoring rank 0's on
every rank counts its half of the epoch twice. (The FSDP path is checked end to end in
``test_fsdp_scenarios.py``.)
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train import Classification, Event, Executor
from declarative_train.checkpoint import read
from declarative_train.data import Digits
from declarative_train.models import MLP
from tests.distributed._procs import spawn_ranks
from tests.distributed._scenarios import rank_process

pytestmark = pytest.mark.ddp
SAVE_AT_STEP = 5


def _fit(process: Any, job: str, ckpt: Path, resume: bool) -> dict[str, Any]:
    """One epoch of 8 steps on this rank: saving at step 5, or resumed from that save."""
    from declarative_train.distributed.ddp import DDPDistribution

    os.environ["DTRAIN_JOB"] = job  # each fit's process group under its own store prefix
    distribution = DDPDistribution(process, timeout_s=60, seed=3)
    torch.manual_seed(0)
    ex = Executor(task=Classification(MLP(64, [32], 10), torch.nn.CrossEntropyLoss()), data=Digits(batch_size=16),
                  optimizer=partial(torch.optim.SGD, lr=0.1), distribution=distribution, seed=3, max_epochs=1,
                  limit_train_batches=8, limit_val_batches=0)
    if not resume:
        ex.events.on(Event.STEP_CHECKPOINT, lambda executor: executor.save_checkpoint(str(ckpt)), once=SAVE_AT_STEP)
    try:
        ex.fit(ckpt_path=str(ckpt) if resume else None)
    finally:
        distribution.teardown()
    return {"train/loss": ex.state.metrics["train/loss"], "step": ex.state.global_step}


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Spawned entry: the uninterrupted fit (which saves mid-epoch), then the fit resumed from that save."""
    process = rank_process(rank, world_size, port)
    ckpt = Path(out_dir) / "mid_epoch.ckpt"
    outputs = {"uninterrupted": _fit(process, "uninterrupted", ckpt, resume=False),
               "resumed": _fit(process, "resumed", ckpt, resume=True)}
    torch.save(outputs, Path(out_dir) / f"rank{rank}.pt")


def test_the_epoch_mean_loss_after_a_mid_epoch_resume_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    ranks = spawn_ranks(run_rank, 2, tmp_path, 180, "DDP resume")
    saved = read(str(tmp_path / "mid_epoch.ckpt"))["loop"]  # a plain file under DDP
    assert saved["batch_idx"] == SAVE_AT_STEP and len(saved["epoch_loss_sum_ranks"]) == 2
    assert saved["epoch_loss_sum_ranks"][0] != saved["epoch_loss_sum_ranks"][1]  # each rank's own batches
    for outputs in ranks:
        assert outputs["resumed"]["step"] == outputs["uninterrupted"]["step"] == 8
        assert outputs["resumed"]["train/loss"] == outputs["uninterrupted"]["train/loss"]
