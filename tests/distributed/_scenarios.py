"""Executor scenarios run once per rank in spawned processes, and once in one process for reference.

Each scenario takes a distribution (``SingleProcess`` or ``DDPDistribution``) and the per-process
batch size, and returns plain tensors/floats that the tests compare across the two layouts.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from declarative_train import Classification, Executor
from declarative_train.data import Digits
from declarative_train.distributed import Distribution
from declarative_train.metrics import AUROC, Accuracy, F1Score
from declarative_train.models import CNN, MLP

GLOBAL_BATCH = 32


class PartlyUsed(nn.Module):
    """A net with a layer its forward never touches (needs ``find_unused_parameters``)."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(64, 10)
        self.unused = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.used(x)


def _executor(distribution: Distribution, net: nn.Module, batch: int, **settings: Any) -> Executor:
    torch.manual_seed(0)
    task = Classification(net, nn.CrossEntropyLoss())
    metrics = {"acc": Accuracy(task="multiclass", num_classes=10),
               "f1": F1Score(task="multiclass", num_classes=10, average="macro"),
               "auroc": AUROC(task="multiclass", num_classes=10)}
    return Executor(task=task, data=Digits(batch_size=batch), optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9),
                    metrics=metrics, distribution=distribution, seed=3, **settings)


def evaluate(distribution: Distribution, batch: int) -> dict[str, Any]:
    """Fixed random weights: val and test metrics."""
    torch.manual_seed(1)
    ex = _executor(distribution, MLP(64, [32], 10), batch)
    return {"val": ex.validate(), "test": ex.test(ckpt_path=None)}


def _weights(ex: Executor) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in ex.task.state_dict().items()}


def sync_batchnorm(distribution: Distribution, batch: int) -> dict[str, Any]:
    """A CNN with batch norm trained 6 steps; weights and running statistics after."""
    torch.manual_seed(2)
    if hasattr(distribution, "sync_batchnorm"):
        distribution.sync_batchnorm = True
    ex = _executor(distribution, CNN([1, 8, 8], [8, 8], 10), batch, max_epochs=1, limit_train_batches=6,
                   limit_val_batches=0)
    ex.fit()
    return _weights(ex)


def accumulate(distribution: Distribution, batch: int) -> dict[str, Any]:
    """Accumulating 3 micro-batches per step: weights, and how many gradient syncs DDP made."""
    torch.manual_seed(4)
    ex = _executor(distribution, MLP(64, [32], 10), batch, max_epochs=1, limit_train_batches=9,
                   limit_val_batches=0, accumulate_grad_batches=3)
    ex.setup()
    syncs = []
    step = ex._loop.training_step
    if hasattr(step, "register_comm_hook"):
        def counting_hook(state, bucket):  # DDP checks the annotations: leave them off
            syncs.append(1)
            fut = torch.distributed.all_reduce(bucket.buffer(), async_op=True).get_future()
            return fut.then(lambda f: f.value()[0] / torch.distributed.get_world_size())

        step.register_comm_hook(None, counting_hook)
    ex.fit()
    return {"weights": _weights(ex), "syncs": len(syncs), "steps": ex.state.global_step}


def unused_parameters(distribution: Distribution, batch: int) -> dict[str, Any]:
    """A net with an unused layer trains 4 steps (with find_unused_parameters on)."""
    if hasattr(distribution, "find_unused_parameters"):
        distribution.find_unused_parameters = True
    torch.manual_seed(5)
    ex = _executor(distribution, PartlyUsed(), batch, max_epochs=1, limit_train_batches=4, limit_val_batches=0)
    ex.fit()
    return _weights(ex)


class NaNOnRankOne(Classification):
    """Rank 1's loss is NaN on the second batch, which ends a logging step; rank 0's stays finite."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if batch_idx == 1 and torch.distributed.is_initialized() and torch.distributed.get_rank() == 1:
            loss = loss * float("nan")
        return loss


def nan_on_one_rank(distribution: Distribution, batch: int) -> dict[str, Any]:
    """Both ranks stop at once, though only rank 1 saw a non-finite loss (the error, and how long it took)."""
    torch.manual_seed(6)
    ex = Executor(task=NaNOnRankOne(MLP(64, [32], 10), nn.CrossEntropyLoss()), data=Digits(batch_size=batch),
                  optimizer=partial(torch.optim.SGD, lr=0.1), distribution=distribution, seed=3, max_epochs=1,
                  limit_train_batches=6, limit_val_batches=0, log_every_n_steps=2)
    started = time.perf_counter()
    try:
        ex.fit()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - started,
                "step": ex.state.global_step}
    return {"error": None, "seconds": time.perf_counter() - started, "step": ex.state.global_step}


def ema(distribution: Distribution, batch: int) -> dict[str, Any]:
    """The EMA callback on a CNN with batch norm, 2 epochs: its average and the final weights."""
    from declarative_train.callbacks import EMA

    torch.manual_seed(5)
    if hasattr(distribution, "sync_batchnorm"):
        distribution.sync_batchnorm = True  # the same training as one process with the global batch
    averaging = EMA(decay=0.8, update_every=2)
    ex = _executor(distribution, CNN([1, 8, 8], [8, 8], 10), batch, max_epochs=2, limit_train_batches=4,
                   limit_val_batches=2, callbacks={"ema": averaging})
    ex.fit()
    assert averaging.averaged is not None
    return {"averaged": [t.clone() for t in averaging.averaged], "weights": _weights(ex)}


def swa(distribution: Distribution, batch: int) -> dict[str, Any]:
    """The SWA callback on a CNN with batch norm, 3 epochs: the averaged weights and BN statistics."""
    from declarative_train.callbacks import StochasticWeightAveraging

    torch.manual_seed(6)
    if hasattr(distribution, "sync_batchnorm"):
        distribution.sync_batchnorm = True  # the same training as one process with the global batch
    averaging = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=1)
    ex = _executor(distribution, CNN([1, 8, 8], [8, 8], 10), batch, max_epochs=3, limit_train_batches=4,
                   limit_val_batches=2, callbacks={"swa": averaging})
    ex.fit()
    return {"weights": _weights(ex), "test": ex.test()}


def predict_train(distribution: Distribution, batch: int) -> dict[str, Any]:
    """After a few steps: this rank's predictions of the train split (its ordered shard) and a forward
    pass over all the train rows in order."""
    torch.manual_seed(7)
    ex = _executor(distribution, MLP(64, [32], 10), batch, max_epochs=1, limit_train_batches=3, limit_val_batches=0)
    ex.fit()
    predicted = torch.cat(ex.predict("train"))
    with torch.no_grad():
        expected = ex.task(ex.data.datasets["train"].tensors[0])
    return {"predicted": predicted, "expected": expected}


SCENARIOS = {"evaluate": evaluate, "sync_batchnorm": sync_batchnorm, "accumulate": accumulate,
             "unused_parameters": unused_parameters, "nan_on_one_rank": nan_on_one_rank, "ema": ema, "swa": swa,
             "predict_train": predict_train}


def rank_process(rank: int, world_size: int, port: int) -> Any:
    """This spawned process as ``rank`` of ``world_size`` (one thread): its ``ProcessEnv``."""
    from declarative_train.distributed.env import detect

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    process = detect()
    assert process is not None
    return process


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Spawned entry: join a gloo group as ``rank``, run every scenario, save the outputs."""
    from declarative_train.distributed.ddp import DDPDistribution

    process = rank_process(rank, world_size, port)
    outputs: dict[str, Any] = {}
    for name, scenario in SCENARIOS.items():
        os.environ["DTRAIN_JOB"] = name  # each scenario's process group under its own store prefix
        distribution = DDPDistribution(process, timeout_s=60, seed=3)
        started = time.perf_counter()
        try:
            outputs[name] = scenario(distribution, GLOBAL_BATCH // world_size)
        finally:
            distribution.teardown()
        outputs[f"{name}_s"] = time.perf_counter() - started
    torch.save(outputs, Path(out_dir) / f"rank{rank}.pt")
