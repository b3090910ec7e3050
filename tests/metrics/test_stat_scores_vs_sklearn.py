"""Confusion-count metrics against scikit-learn (or a written-out formula) on seeded inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from declarative_train.metrics import functional as F
from tests.metrics._data import Case, classification_cases, task_kwargs

CASES = classification_cases()
AVERAGES = ["micro", "macro", "weighted", "none"]
ZERO_DIV = [0.0, 1.0, float("nan")]


def _sk_average(task: str, average: str) -> str | None:
    if task == "binary":
        return "binary"
    return None if average == "none" else average


def _labels(case: Case, average: str) -> dict:
    if case.task == "multiclass" and average == "none":
        return {"labels": list(range(case.n))}
    return {}


def _mcm(case: Case) -> np.ndarray:
    if case.task == "binary":
        return skm.multilabel_confusion_matrix(case.true_labels, case.pred_labels, labels=[1])
    labels = list(range(case.n))
    return skm.multilabel_confusion_matrix(case.true_labels, case.pred_labels, labels=labels)


def _present(case: Case, mcm: np.ndarray) -> np.ndarray:
    if case.task != "multiclass":
        return np.ones(len(mcm), dtype=bool)
    return (mcm[:, 1, 1] + mcm[:, 0, 1] + mcm[:, 1, 0]) > 0


def _written_out(
    case: Case, num: np.ndarray, den: np.ndarray, average: str, zd: float
) -> np.ndarray | float:
    """Per-class ``num/den`` with sklearn's averaging rules, written out with numpy."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if average == "micro" and case.task != "binary":
            return zd if den.sum() == 0 else num.sum() / den.sum()
        scores = np.where(den == 0, zd, num / np.where(den == 0, 1, den))
    if case.task == "binary":
        return scores[0]
    if average == "none":
        return scores
    mcm = _mcm(case)
    keep = _present(case, mcm) & ~np.isnan(scores)
    if not keep.any():
        return np.nan
    weights = (mcm[:, 1, 1] + mcm[:, 1, 0])[keep]
    if average == "weighted" and weights.sum() > 0:
        return np.average(scores[keep], weights=weights)
    return scores[keep].mean()


def _ref_accuracy(case: Case, average: str, zd: float):
    y, p = case.true_labels, case.pred_labels
    if case.task == "binary" or (case.task == "multiclass" and average == "micro"):
        return skm.accuracy_score(y, p)
    if case.task == "multiclass":
        return skm.recall_score(
            y,
            p,
            average=_sk_average(case.task, average),
            zero_division=zd,
            **_labels(case, average),
        )
    if average == "micro":
        return 1 - skm.hamming_loss(y, p)
    per = np.array([skm.accuracy_score(y[:, i], p[:, i]) for i in range(case.n)])
    if average == "none":
        return per
    w = y.sum(0)
    return np.average(per, weights=w) if average == "weighted" and w.sum() > 0 else per.mean()


def _prf(fn):
    def ref(case: Case, average: str, zd: float, **kw):
        return fn(
            case.true_labels,
            case.pred_labels,
            average=_sk_average(case.task, average),
            zero_division=zd,
            **_labels(case, average),
            **kw,
        )

    return ref


def _from_mcm(kind: str):
    def ref(case: Case, average: str, zd: float):
        m = _mcm(case)
        tn, fp, fn, tp = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
        num, den = {
            "specificity": (tn, tn + fp),
            "dice": (2 * tp, 2 * tp + fp + fn),
            "jaccard": (tp, tp + fp + fn),
        }[kind]
        return _written_out(case, num.astype(float), den.astype(float), average, zd)

    return ref


REFERENCES = {
    "accuracy": _ref_accuracy,
    "hamming_distance": lambda c, a, z: 1 - np.asarray(_ref_accuracy(c, a, z)),
    "precision": _prf(skm.precision_score),
    "recall": _prf(skm.recall_score),
    "f1_score": _prf(skm.f1_score),
    # sklearn's jaccard_score has no zero_division=nan: the written-out formula covers that case
    "jaccard_index": lambda c, a, z: (
        _from_mcm("jaccard")(c, a, z) if z != z else _prf(skm.jaccard_score)(c, a, z)
    ),
    "specificity": _from_mcm("specificity"),
    "dice": _from_mcm("dice"),
}


def _check(ours: torch.Tensor, ref, msg: str) -> None:
    np.testing.assert_allclose(
        ours.double().numpy(),
        np.asarray(ref, dtype=float),
        rtol=1e-6,
        atol=1e-6,
        equal_nan=True,
        err_msg=msg,
    )


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_count_metric_matches_reference(name):
    fn = getattr(F, name)
    for case in CASES:
        for average in AVERAGES if case.task != "binary" else ["micro"]:
            for zd in ZERO_DIV:
                ours = fn(
                    case.preds, case.target, average=average, zero_division=zd, **task_kwargs(case)
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ref = REFERENCES[name](case, average, zd)
                _check(ours, ref, f"{name} {case.note} average={average} zero_division={zd}")


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_fbeta_matches_sklearn(beta):
    for case in CASES:
        for average in AVERAGES if case.task != "binary" else ["micro"]:
            ours = F.fbeta_score(
                case.preds, case.target, beta=beta, average=average, **task_kwargs(case)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _prf(skm.fbeta_score)(case, average, 0.0, beta=beta)
            _check(ours, ref, f"fbeta {case.note} {average}")


def test_stat_scores_match_multilabel_confusion_matrix():
    for case in CASES:
        m = _mcm(case)
        tn, fp, fn, tp = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
        table = np.stack([tp, fp, tn, fn, tp + fn], axis=1)
        ours = F.stat_scores(case.preds, case.target, average="none", **task_kwargs(case))
        ref = table[0] if case.task == "binary" else table
        np.testing.assert_array_equal(ours.numpy(), ref, err_msg=case.note)
        if case.task != "binary":
            micro = F.stat_scores(case.preds, case.target, average="micro", **task_kwargs(case))
            np.testing.assert_array_equal(micro.numpy(), table.sum(0))
            macro = F.stat_scores(case.preds, case.target, average="macro", **task_kwargs(case))
            np.testing.assert_allclose(macro.numpy(), table.mean(0), rtol=1e-6)


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_matches_sklearn(normalize):
    for case in CASES:
        ours = F.confusion_matrix(case.preds, case.target, normalize=normalize, **task_kwargs(case))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case.task == "multilabel":
                ref = skm.multilabel_confusion_matrix(case.true_labels, case.pred_labels).astype(
                    float
                )
                if normalize is not None:
                    axis = {"true": 2, "pred": 1, "all": (1, 2)}[normalize]
                    with np.errstate(invalid="ignore"):
                        ref = np.nan_to_num(ref / ref.sum(axis=axis, keepdims=True))
            else:
                ref = skm.confusion_matrix(
                    case.true_labels,
                    case.pred_labels,
                    labels=list(range(case.n)),
                    normalize=normalize,
                )
        np.testing.assert_allclose(
            ours.numpy(), ref, rtol=1e-6, atol=1e-7, err_msg=f"{case.note} {normalize}"
        )


def test_matthews_corrcoef_matches_sklearn():
    for case in CASES:
        ours = F.matthews_corrcoef(case.preds, case.target, **task_kwargs(case))
        y, p = case.true_labels.ravel(), case.pred_labels.ravel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = skm.matthews_corrcoef(y, p)
        _check(ours, ref, case.note)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn(weights):
    for case in CASES:
        ours = F.cohen_kappa(case.preds, case.target, weights=weights, **task_kwargs(case))
        y, p = case.true_labels.ravel(), case.pred_labels.ravel()
        labels = list(range(case.n)) if case.task == "multiclass" else [0, 1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = skm.cohen_kappa_score(y, p, labels=labels, weights=weights)
        _check(ours, ref, f"{case.note} {weights}")


def test_top_k_accuracy_matches_sklearn():
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(50, 5))
    target = rng.integers(0, 5, 50)
    for k in (1, 2, 3):
        ours = F.accuracy(
            torch.tensor(scores), torch.tensor(target), task="multiclass", num_classes=5, top_k=k
        )
        ref = skm.top_k_accuracy_score(target, scores, k=k, labels=list(range(5)))
        _check(ours, ref, f"top_k={k}")


def test_ignore_index_drops_entries():
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(size=(40, 3)))
    target = torch.tensor(rng.integers(0, 3, 40))
    target[::4] = -100
    keep = target != -100
    for average in AVERAGES:
        ours = F.f1_score(
            logits, target, task="multiclass", num_classes=3, average=average, ignore_index=-100
        )
        ref = F.f1_score(
            logits[keep], target[keep], task="multiclass", num_classes=3, average=average
        )
        assert torch.allclose(ours, ref, equal_nan=True)


def test_labels_and_probabilities_and_logits_agree():
    probs = torch.tensor([0.2, 0.7, 0.9, 0.4])
    target = torch.tensor([0, 1, 0, 1])
    logits = torch.log(probs / (1 - probs))
    labels = (probs > 0.5).long()
    values = [F.f1_score(x, target, task="binary") for x in (probs, logits, labels)]
    assert values[0] == values[1] == values[2]
