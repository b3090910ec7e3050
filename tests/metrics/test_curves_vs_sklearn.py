"""AUROC, average precision, ROC and PR curves against scikit-learn, exact and binned."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from declarative_train.metrics import AUROC, AveragePrecision
from declarative_train.metrics import functional as F

GRID = torch.linspace(0, 1, 21)


def _binary_data(seed: int, n: int = 60, ties: bool = False, grid: bool = False):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.5 + 0.2 * (target - 0.5), 0.25, n), 0, 1).astype(np.float32)
    if ties:
        scores = np.round(scores, 1).astype(np.float32)
    if grid:
        scores = GRID.numpy()[rng.integers(0, 21, n)]
    return scores, target


def _close(ours, ref, msg=""):
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float),
        np.asarray(ref, dtype=float),
        rtol=1e-6,
        atol=1e-6,
        equal_nan=True,
        err_msg=msg,
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_binary_exact(seed, ties):
    scores, target = _binary_data(seed, ties=ties)
    p, t = torch.tensor(scores), torch.tensor(target)
    _close(F.auroc(p, t, task="binary"), skm.roc_auc_score(target, scores))
    _close(F.average_precision(p, t, task="binary"), skm.average_precision_score(target, scores))
    fpr, tpr, thr = F.roc(p, t, task="binary")
    rf, rt, rth = skm.roc_curve(target, scores, drop_intermediate=False)
    _close(fpr, rf), _close(tpr, rt), _close(thr, rth)
    prec, rec, thr = F.precision_recall_curve(p, t, task="binary")
    rp, rr, rth = skm.precision_recall_curve(target, scores)
    _close(prec, rp), _close(rec, rr), _close(thr, rth)


@pytest.mark.parametrize("seed", range(4))
def test_binary_binned_equals_exact_on_grid(seed):
    scores, target = _binary_data(seed, grid=True)
    p, t = torch.tensor(scores), torch.tensor(target)
    _close(F.auroc(p, t, task="binary", thresholds=GRID), skm.roc_auc_score(target, scores))
    _close(
        F.average_precision(p, t, task="binary", thresholds=21),
        skm.average_precision_score(target, scores),
    )
    m = AUROC(task="binary", thresholds=21)
    for chunk in np.array_split(np.arange(len(scores)), 3):
        m.update(p[chunk], t[chunk])
    _close(m.compute(), skm.roc_auc_score(target, scores))


def test_binned_close_to_exact_off_grid():
    scores, target = _binary_data(11, n=2000)
    p, t = torch.tensor(scores), torch.tensor(target)
    assert (
        abs(F.auroc(p, t, task="binary", thresholds=1000) - skm.roc_auc_score(target, scores))
        < 2e-3
    )


def test_single_class_target():
    p, t = torch.tensor([0.2, 0.6, 0.9]), torch.tensor([1, 1, 1])
    assert torch.isnan(F.auroc(p, t, task="binary"))  # sklearn raises: undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = skm.average_precision_score([0, 0, 0], [0.2, 0.6, 0.9])
    _close(F.average_precision(p, torch.zeros(3, dtype=torch.long), task="binary"), ref)
    _close(F.average_precision(p, t, task="binary"), 1.0)
    _close(F.auroc(torch.tensor([0.3]), torch.tensor([1]), task="binary"), float("nan"))


def _multiclass(seed: int, n: int = 80, c: int = 4):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[target]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return logits.astype(np.float32), probs, target


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("average", ["macro", "weighted", "micro", "none"])
def test_multiclass(seed, average):
    logits, _, target = _multiclass(seed)
    p = torch.tensor(logits)
    probs = torch.softmax(p, 1).double().numpy()  # what the metric sees after logit detection
    onehot = np.eye(4)[target]
    ours_auc = F.auroc(p, torch.tensor(target), task="multiclass", num_classes=4, average=average)
    ours_ap = F.average_precision(
        p, torch.tensor(target), task="multiclass", num_classes=4, average=average
    )
    sk_avg = None if average == "none" else average
    _close(ours_auc, skm.roc_auc_score(onehot, probs, average=sk_avg), average)
    _close(ours_ap, skm.average_precision_score(onehot, probs, average=sk_avg), average)
    if average in ("macro", "weighted"):
        _close(ours_auc, skm.roc_auc_score(target, probs, multi_class="ovr", average=average))


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", "none"])
def test_multilabel(average):
    rng = np.random.default_rng(5)
    target = rng.integers(0, 2, (70, 3))
    probs = np.clip(rng.random((70, 3)) * 0.6 + 0.4 * target, 0, 1).round(2).astype(np.float32)
    sk_avg = None if average == "none" else average
    p, t = torch.tensor(probs), torch.tensor(target)
    _close(
        F.auroc(p, t, task="multilabel", num_labels=3, average=average),
        skm.roc_auc_score(target, probs, average=sk_avg),
    )
    _close(
        F.average_precision(p, t, task="multilabel", num_labels=3, average=average),
        skm.average_precision_score(target, probs, average=sk_avg),
    )
    fprs, tprs, _ = F.roc(p, t, task="multilabel", num_labels=3)
    for k in range(3):
        rf, rt, _ = skm.roc_curve(target[:, k], probs[:, k], drop_intermediate=False)
        _close(fprs[k], rf), _close(tprs[k], rt)


def test_multiclass_absent_class_left_out_of_macro():
    logits, _, target = _multiclass(2)
    target[target == 3] = 0
    p, t = torch.tensor(logits), torch.tensor(target)
    per_class = F.auroc(p, t, task="multiclass", num_classes=4, average="none")
    assert torch.isnan(per_class[3]) and not torch.isnan(per_class[:3]).any()
    macro = F.auroc(p, t, task="multiclass", num_classes=4, average="macro")
    _close(macro, per_class[:3].mean())


def test_multiclass_binned_curve_shapes():
    logits, _, target = _multiclass(1)
    fpr, tpr, thr = F.roc(
        torch.tensor(logits), torch.tensor(target), task="multiclass", num_classes=4, thresholds=11
    )
    assert fpr.shape == tpr.shape == (4, 12) and thr.shape == (12,)
    prec, rec, thr = F.precision_recall_curve(
        torch.tensor(logits), torch.tensor(target), task="multiclass", num_classes=4, thresholds=11
    )
    assert prec.shape == rec.shape == (4, 12) and thr.shape == (11,)


def test_binned_state_is_constant_size():
    m = AveragePrecision(task="multiclass", num_classes=5, thresholds=50)
    size = m.hist.numel()
    for _ in range(5):
        m.update(torch.randn(1000, 5), torch.randint(0, 5, (1000,)))
    assert m.hist.numel() == size == 5 * 2 * 51


@settings(max_examples=25, deadline=None)
@given(
    scores=st.lists(
        st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]), min_size=2, max_size=30
    ),
    data=st.data(),
)
def test_binary_auroc_ap_property(scores, data):
    target = data.draw(st.lists(st.integers(0, 1), min_size=len(scores), max_size=len(scores)))
    if len(set(target)) < 2:
        target[0], target[1] = 0, 1
    p, t = torch.tensor(scores), torch.tensor(target)
    _close(F.auroc(p, t, task="binary"), skm.roc_auc_score(target, scores))
    _close(F.average_precision(p, t, task="binary"), skm.average_precision_score(target, scores))
    grid = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    _close(F.auroc(p, t, task="binary", thresholds=grid), skm.roc_auc_score(target, scores))
