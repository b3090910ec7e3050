"""ModelSummary under FSDP on 2 gloo ranks: the whole model's sizes, and what one rank's shards hold."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train import Classification, Executor
from declarative_train.callbacks import ModelSummary
from declarative_train.callbacks.model_summary import SUMMARY_FILE, summarize
from declarative_train.data import Digits
from declarative_train.models import MLP
from tests.distributed._procs import spawn_ranks
from tests.distributed._scenarios import rank_process

pytestmark = pytest.mark.ddp
WORLD = 2


def _task() -> Classification:
    torch.manual_seed(0)
    return Classification(MLP(64, [33], 10), torch.nn.CrossEntropyLoss())  # 33 rows: shards of 17 and 16


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Spawned entry: 2 Adam steps under FSDP with the summary callback; this rank's table."""
    from declarative_train.distributed.fsdp import FSDPDistribution

    os.environ["DTRAIN_JOB"] = "model_summary"
    distribution = FSDPDistribution(rank_process(rank, world_size, port), wrap=["Linear"], timeout_s=60)
    try:
        ex = Executor(task=_task(), data=Digits(batch_size=16), optimizer=partial(torch.optim.Adam, lr=1e-3),
                      distribution=distribution, callbacks={"model_summary": ModelSummary(save_dir=out_dir)},
                      max_epochs=1, limit_train_batches=2, limit_val_batches=0)
        ex.fit()
        table = summarize(ex.task, 1, ex.optimizer)
    finally:
        distribution.teardown()
    torch.save({"sharded_over": table.sharded_over, "shard_bytes": table.shard_bytes,
                "whole": (table.param_bytes, table.grad_bytes, table.optimizer_bytes), "params": table.total_params},
               Path(out_dir) / f"rank{rank}.pt")


def test_the_summary_reports_the_whole_model_and_this_ranks_shards(tmp_path: Path) -> None:
    ranks: list[dict[str, Any]] = spawn_ranks(run_rank, WORLD, tmp_path, 120, "model summary")
    plain = summarize(_task())
    params = plain.param_bytes  # 4 * (64 * 33 + 33 + 33 * 10 + 10) bytes
    adam = 2 * params  # exp_avg and exp_avg_sq, sharded like the parameters; the step counts are not
    for rank in ranks:
        assert rank["sharded_over"] == WORLD and rank["params"] == plain.total_params == 2485
        assert rank["whole"][:2] == (params, params) and rank["whole"][2] >= adam
    shards = [rank["shard_bytes"] for rank in ranks]
    assert shards[0][0] > shards[1][0]  # rank 0 holds row 17 of the 33
    assert shards[0][0] + shards[1][0] == params and shards[0][1] + shards[1][1] == params
    assert adam <= shards[0][2] + shards[1][2] < adam + 64
    text = (tmp_path / SUMMARY_FILE).read_text()  # written by rank 0
    mb = 1024 * 1024
    assert f"memory: parameters {params / mb:.3f} MB, gradients {params / mb:.3f} MB" in text
    assert (f"sharded over 2 ranks, this rank holds: parameters {shards[0][0] / mb:.3f} MB, "
            f"gradients {shards[0][1] / mb:.3f} MB, optimizer state {shards[0][2] / mb:.3f} MB") in text, text
