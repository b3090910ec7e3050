"""Base Metric and MetricCollection behaviour (single process)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from declarative_train.metrics import (
    Accuracy,
    F1Score,
    MeanAbsoluteError,
    MeanSquaredError,
    Metric,
    MetricCollection,
    Precision,
    R2Score,
)
from declarative_train.metrics.functional import _stats


class Summer(Metric):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.add_state("total", torch.tensor(0.0), reduce="sum", persistent=True)
        self.add_state("seen", [], reduce="cat", persistent=True)
        self.add_state("top", torch.tensor(float("-inf")), reduce="max")
        self.add_state("avg", torch.tensor(0.0), reduce="mean")
        self.calls = 0

    def update(self, x):
        self.total += x.sum()
        self.seen.append(x)
        self.top = torch.maximum(self.top, x.max())
        self.avg = x.mean()

    def compute(self):
        self.calls += 1
        return self.total + torch.cat(self.seen).numel() * 0


def test_update_compute_cache_reset():
    m = Summer()
    m.update(torch.tensor([1.0, 2.0]))
    assert m.compute() == 3.0
    assert m.compute() == 3.0
    assert m.calls == 1  # cached
    m.update(torch.tensor([4.0]))
    assert m.compute() == 7.0 and m.calls == 2
    assert m.update_count == 2
    m.reset()
    assert m.total == 0 and m.seen == [] and m.update_count == 0


def test_forward_returns_batch_value_and_accumulates():
    m = Summer()
    assert m(torch.tensor([1.0, 2.0])) == 3.0
    assert m(torch.tensor([5.0])) == 5.0
    assert m.compute() == 8.0
    assert m.top == 5.0
    assert len(m.seen) == 2


def test_forward_matches_for_builtin_metrics():
    torch.manual_seed(0)
    acc = Accuracy(task="multiclass", num_classes=4)
    ref = Accuracy(task="multiclass", num_classes=4)
    for _ in range(3):
        p, t = torch.randn(16, 4), torch.randint(0, 4, (16,))
        batch = acc(p, t)
        single = Accuracy(task="multiclass", num_classes=4)
        single.update(p, t)
        assert torch.equal(batch, single.compute())
        ref.update(p, t)
    assert torch.equal(acc.compute(), ref.compute())


def test_state_dict_round_trip_and_non_persistent():
    m = Summer()
    m.update(torch.tensor([1.0, 2.0]))
    sd = m.state_dict()
    assert set(sd) == {"total", "seen"}
    n = Summer()
    n.load_state_dict(sd)
    assert n.compute() == 3.0
    with pytest.raises(RuntimeError):
        Summer().load_state_dict({"total": torch.tensor(1.0)}, strict=True)


def test_builtin_state_dict_round_trip():
    a = Accuracy(task="multiclass", num_classes=3)
    a.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]))
    b = Accuracy(task="multiclass", num_classes=3)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.compute(), b.compute())


def test_to_moves_states_and_defaults():
    m = Summer().to(torch.float64)
    m.update(torch.tensor([1.0], dtype=torch.float64))
    assert m.total.dtype == torch.float64
    m.reset()
    assert m.total.dtype == torch.float64
    assert m.device == torch.device("cpu")


def test_add_state_rejects_bad_arguments():
    m = Metric()
    with pytest.raises(ValueError, match="reduce"):
        m.add_state("x", torch.tensor(0.0), reduce="median")
    with pytest.raises(ValueError, match="cat"):
        m.add_state("y", [], reduce="sum")
    m.add_state("z", torch.tensor(0.0))
    with pytest.raises(ValueError, match="taken"):
        m.add_state("z", torch.tensor(0.0))


def test_sync_is_noop_without_distributed():
    m = Summer()
    m.update(torch.tensor([1.0]))
    with m.sync_context():
        assert m.total == 1.0


def test_deepcopy_and_pickle():
    m = Summer()
    m.update(torch.tensor([1.0]))
    c = copy.deepcopy(m)
    c.update(torch.tensor([2.0]))
    assert m.compute() == 1.0 and c.compute() == 3.0
    p = pickle.loads(pickle.dumps(m))
    assert p.compute() == 1.0


def _executor_loop(coll, batches):
    for preds, target in batches:
        coll.update(preds, target)
    out = coll.compute()
    coll.reset()
    return out


def test_executor_contract_classification():
    torch.manual_seed(1)
    coll = MetricCollection(
        {
            "acc": Accuracy(task="multiclass", num_classes=10),
            "f1": F1Score(task="multiclass", num_classes=10, average="macro"),
        },
        prefix="val/",
    )
    batches = [(torch.randn(32, 10), torch.randint(0, 10, (32,))) for _ in range(4)]
    out = _executor_loop(coll, batches)
    assert set(out) == {"val/acc", "val/f1"}
    preds = torch.cat([b[0] for b in batches]).argmax(1)
    target = torch.cat([b[1] for b in batches])
    assert out["val/acc"].ndim == 0
    assert torch.isclose(out["val/acc"], (preds == target).float().mean())
    out2 = _executor_loop(coll, batches)  # after reset the same data gives the same result
    assert torch.equal(out["val/acc"], out2["val/acc"])


def test_executor_contract_regression():
    coll = MetricCollection(
        {"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()}, prefix="val/"
    )
    p, t = torch.randn(64), torch.randn(64)
    out = _executor_loop(coll, [(p[:40], t[:40]), (p[40:], t[40:])])
    assert torch.isclose(out["val/mse"], ((p - t) ** 2).mean())
    assert torch.isclose(out["val/mae"], (p - t).abs().mean())
    assert all(v.ndim == 0 for v in out.values())


def test_metrics_sharing_counts_count_each_batch_once(monkeypatch):
    """Accuracy, macro F1 and macro precision over the same counts: one count per batch, same values."""
    counted = []
    count = _stats.update_state
    monkeypatch.setattr(_stats, "update_state", lambda *a: counted.append(1) or count(*a))

    def members():
        return {"acc": Accuracy(task="multiclass", num_classes=5),
                "f1": F1Score(task="multiclass", num_classes=5, average="macro"),
                "prec": Precision(task="multiclass", num_classes=5, average="macro"),
                "top2": Accuracy(task="multiclass", num_classes=5, top_k=2)}  # other counts: own group
    torch.manual_seed(0)
    batches = [(torch.randn(16, 5), torch.randint(0, 5, (16,))) for _ in range(3)]
    coll, alone = MetricCollection(members()), members()
    for _ in range(2):  # twice: a reset must not leave a member behind
        for logits, target in batches:
            coll.update(logits, target)
        assert len(counted) == 2 * len(batches)  # acc/f1/prec once, top2 once
        for name in ("acc", "f1", "prec", "top2"):
            for logits, target in batches:
                alone[name].update(logits, target)
            assert torch.equal(coll[name].compute(), alone[name].compute()), name
            assert coll[name].update_count == len(batches)
            alone[name].reset()
        coll.reset()
        counted.clear()
    assert Accuracy(task="binary", threshold=0.3).state_group() != Accuracy(task="binary").state_group()


def test_collection_api():
    coll = MetricCollection([MeanSquaredError(), MeanAbsoluteError()], prefix="train/")
    assert coll.keys() == ["train/MeanSquaredError", "train/MeanAbsoluteError"]
    assert coll.keys(keep_base=True) == ["MeanSquaredError", "MeanAbsoluteError"]
    assert isinstance(coll["MeanSquaredError"], MeanSquaredError)
    assert isinstance(coll["train/MeanAbsoluteError"], MeanAbsoluteError)
    assert "train/MeanSquaredError" in coll and len(coll) == 2
    val = coll.clone(prefix="val/")
    val.update(torch.ones(3), torch.zeros(3))
    assert val.compute() == {
        "val/MeanSquaredError": torch.tensor(1.0),
        "val/MeanAbsoluteError": torch.tensor(1.0),
    }
    coll.update(torch.zeros(3), torch.zeros(3))
    assert coll.compute()["train/MeanSquaredError"] == 0  # clone is independent
    batch = coll(torch.ones(1), torch.zeros(1))
    assert batch["train/MeanSquaredError"] == 1.0
    assert isinstance(coll, torch.nn.Module)
    assert MetricCollection({}).compute() == {}
    with pytest.raises(ValueError, match="Metric"):
        MetricCollection({"x": torch.nn.Linear(1, 1)})  # type: ignore[dict-item]


def test_collection_state_dict_and_to():
    coll = MetricCollection({"acc": Accuracy(task="binary")}).to("cpu")
    coll.update(torch.tensor([0.9, 0.1]), torch.tensor([1, 1]))
    other = MetricCollection({"acc": Accuracy(task="binary")})
    other.load_state_dict(coll.state_dict())
    assert other.compute()["acc"] == 0.5


class _ScalarReads(TorchDispatchMode):
    """Counts ops that copy a tensor value to the host (``.item()``, ``bool(t)`` ...)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "metric, preds, target",
    [
        (
            Accuracy(task="multiclass", num_classes=10, validate_args=False),
            torch.randn(8, 10),
            torch.randint(0, 10, (8,)),
        ),
        (
            F1Score(task="multiclass", num_classes=10, average="macro", validate_args=False),
            torch.randn(8, 10),
            torch.randint(0, 10, (8,)),
        ),
        (Accuracy(task="binary", validate_args=False), torch.randn(8), torch.randint(0, 2, (8,))),
        (
            Accuracy(task="multilabel", num_labels=3, validate_args=False),
            torch.randn(8, 3),
            torch.randint(0, 2, (8, 3)),
        ),
        (MeanSquaredError(validate_args=False), torch.randn(8), torch.randn(8)),
        (R2Score(validate_args=False), torch.randn(8), torch.randn(8)),
    ],
)
def test_update_has_no_host_sync_without_validation(metric, preds, target):
    with _ScalarReads() as mode:
        metric.update(preds, target)
    assert mode.count == 0
