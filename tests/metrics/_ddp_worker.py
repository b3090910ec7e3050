"""Code run inside each spawned process of the ddp tests (gloo on CPU)."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

import declarative_train.metrics as M
from declarative_train.metrics import sync as S
from tests.metrics.test_classes import REGISTRY, _class_kwargs

SCENARIOS = {  # rank -> (start, stop) as fractions of the data; rank 1 empty in "empty"
    "uneven": [(0.0, 0.7), (0.7, 1.0)],
    "empty": [(0.0, 1.0), (1.0, 1.0)],
}


def dataset(i: int):
    torch.manual_seed(1000 + i)
    return REGISTRY[i][3]()


def shard(x: torch.Tensor, rank: int, scenario: str) -> torch.Tensor:
    lo, hi = SCENARIOS[scenario][rank]
    return x[int(lo * len(x)) : int(hi * len(x))]


def five_metric_collection() -> M.MetricCollection:
    return M.MetricCollection(
        {
            "acc": M.Accuracy(task="multiclass", num_classes=4),
            "f1": M.F1Score(task="multiclass", num_classes=4, average="macro"),
            "auroc": M.AUROC(task="multiclass", num_classes=4),
            "ap": M.AveragePrecision(task="multiclass", num_classes=4, thresholds=50),
            "kappa": M.CohenKappa(task="multiclass", num_classes=4),
        },
        prefix="val/",
    )


def collection_data():
    torch.manual_seed(7)
    return torch.randn(90, 4), torch.randint(0, 4, (90,))


def _registry_results(rank: int, scenario: str) -> list:
    out = []
    for i, (cls, _, kwargs, _) in enumerate(REGISTRY):
        preds, target = dataset(i)
        args, kw = _class_kwargs(cls, kwargs)
        metric = cls(*args, **kw)
        p, t = shard(preds, rank, scenario), shard(target, rank, scenario)
        half = len(p) // 2
        if len(p):
            metric.update(p[:half], t[:half])
            metric.update(p[half:], t[half:])
        out.append(metric.compute())
    return out


def _collection_results(rank: int, scenario: str) -> dict:
    preds, target = collection_data()
    coll = five_metric_collection()
    coll.update(shard(preds, rank, scenario), shard(target, rank, scenario))
    S.COUNTER.reset()
    values = coll.compute()
    counts = {
        "collection": S.COUNTER.total,
        "all_reduce": S.COUNTER.all_reduce,
        "all_gather": S.COUNTER.all_gather,
    }
    local = coll["acc"].confmat.sum().item()  # unsync restored the local state
    return {"values": values, "counts": counts, "local_total": local}


class MaxAbs(M.TensorMetric):
    def forward(self, preds, target):
        return (preds - target).abs().max()


def _extras(rank: int) -> dict:
    out: dict = {}
    acc = M.Accuracy(task="binary", dist_sync_on_step=True)
    out["step"] = acc(
        torch.tensor([1, 1]) if rank == 0 else torch.tensor([0, 0]), torch.tensor([1, 1])
    )
    out["step_compute"] = acc.compute()
    mse = M.MeanSquaredError()
    mse.update(torch.tensor([float(rank)]), torch.tensor([0.0]))
    with mse.sync_context():
        out["in_context"] = mse.count.clone()
    out["after_context"] = mse.count.clone()
    tm = MaxAbs(reduce_op="max")
    out["tensor_metric_call"] = tm(torch.tensor([float(rank)]), torch.tensor([0.0]))
    out["tensor_metric_compute"] = tm.compute()
    sk = M.SklearnMetric("accuracy_score")
    if rank == 0:
        sk.update(torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1]))
    out["sklearn"] = sk.compute()
    S.COUNTER.reset()
    auroc = M.AUROC(task="binary")
    auroc.update(torch.rand(5 + rank * 3), torch.randint(0, 2, (5 + rank * 3,)))
    auroc.compute()
    out["single_exact_auroc_collectives"] = S.COUNTER.total
    return out


def run(rank: int, world: int, init_file: str, result_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = {
            s: {"registry": _registry_results(rank, s), "collection": _collection_results(rank, s)}
            for s in SCENARIOS
        }
        results["extras"] = _extras(rank)
        torch.save(results, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
