"""Every metric class: equals its functional form, and batched accumulation equals one shot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import declarative_train.metrics as M
from declarative_train.metrics import functional as F

torch.manual_seed(0)
N = 47
MC = {"task": "multiclass", "num_classes": 4}
ML = {"task": "multilabel", "num_labels": 3}


def _mc():
    return torch.randn(N, 4), torch.randint(0, 4, (N,))


def _ml():
    return torch.rand(N, 3), torch.randint(0, 2, (N, 3))


def _bin():
    # probabilities: a tiny batch of logits that happens to lie in [0, 1] would be read as probabilities
    return torch.rand(N), torch.randint(0, 2, (N,))


def _reg():
    t = torch.randn(N, dtype=torch.float64)
    return t + 0.5 * torch.randn(N, dtype=torch.float64), t


def _img():
    t = torch.rand(N // 8, 1, 16, 16, dtype=torch.float64)
    return (t + 0.1 * torch.randn_like(t)).clamp(0, 1), t


# (class, function, kwargs, data)
REGISTRY = [
    (M.Accuracy, F.accuracy, {**MC, "average": "macro"}, _mc),
    (M.Accuracy, F.accuracy, {**MC, "top_k": 2}, _mc),
    (M.Precision, F.precision, {**ML, "average": "weighted"}, _ml),
    (M.Recall, F.recall, {"task": "binary"}, _bin),
    (M.F1Score, F.f1_score, {**MC, "average": "none"}, _mc),
    (M.FBetaScore, F.fbeta_score, {**MC, "beta": 2.0, "average": "micro"}, _mc),
    (M.Specificity, F.specificity, {**ML, "average": "macro"}, _ml),
    (M.HammingDistance, F.hamming_distance, ML, _ml),
    (M.JaccardIndex, F.jaccard_index, {**MC, "average": "macro"}, _mc),
    (M.Dice, F.dice, {"task": "binary"}, _bin),
    (M.StatScores, F.stat_scores, {**MC, "average": "none"}, _mc),
    (M.ConfusionMatrix, F.confusion_matrix, {**MC, "normalize": "true"}, _mc),
    (M.MatthewsCorrCoef, F.matthews_corrcoef, MC, _mc),
    (M.CohenKappa, F.cohen_kappa, {**MC, "weights": "quadratic"}, _mc),
    (M.AUROC, F.auroc, MC, _mc),
    (M.AUROC, F.auroc, {**ML, "thresholds": 20}, _ml),
    (M.AveragePrecision, F.average_precision, {"task": "binary"}, _bin),
    (M.ROC, F.roc, {"task": "binary"}, _bin),
    (M.PrecisionRecallCurve, F.precision_recall_curve, {**MC, "thresholds": 7}, _mc),
    (M.MeanSquaredError, F.mean_squared_error, {}, _reg),
    (M.RootMeanSquaredError, F.root_mean_squared_error, {}, _reg),
    (M.MeanAbsoluteError, F.mean_absolute_error, {}, _reg),
    (M.MeanSquaredLogError, F.mean_squared_log_error, {}, lambda: tuple(x.abs() for x in _reg())),
    (M.MeanAbsolutePercentageError, F.mean_absolute_percentage_error, {}, _reg),
    (M.R2Score, F.r2_score, {}, _reg),
    (M.ExplainedVariance, F.explained_variance, {}, _reg),
    (M.PearsonCorrCoef, F.pearson_corrcoef, {}, _reg),
    (M.SpearmanCorrCoef, F.spearman_corrcoef, {}, _reg),
    (M.PeakSignalNoiseRatio, F.peak_signal_noise_ratio, {"data_range": 1.0}, _img),
    (
        M.StructuralSimilarityIndexMeasure,
        F.structural_similarity_index_measure,
        {"data_range": 1.0},
        _img,
    ),
]


def assert_same(a, b, msg=""):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b), msg
        for x, y in zip(a, b):
            assert_same(x, y, msg)
        return
    np.testing.assert_allclose(
        a.double().numpy(), b.double().numpy(), rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=msg
    )


def _class_kwargs(cls, kwargs):
    kw = dict(kwargs)
    task = kw.pop("task", None)
    return ((task,) if task else ()), kw


@pytest.mark.parametrize(
    "cls, fn, kwargs, data", REGISTRY, ids=[f"{r[0].__name__}-{i}" for i, r in enumerate(REGISTRY)]
)
def test_class_equals_function_and_batching(cls, fn, kwargs, data):
    preds, target = data()
    args, kw = _class_kwargs(cls, kwargs)
    one_shot = fn(preds, target, **kwargs)
    metric = cls(*args, **kw)
    splits = [0, 1, 1, 2, len(preds) // 2, len(preds)]  # includes an empty batch
    batch_values = []
    for lo, hi in zip(splits[:-1], splits[1:]):
        if hi > lo:
            batch_values.append(
                (metric(preds[lo:hi], target[lo:hi]), fn(preds[lo:hi], target[lo:hi], **kwargs))
            )
        else:
            metric.update(preds[lo:hi], target[lo:hi])
    assert_same(metric.compute(), one_shot, cls.__name__)
    for got, want in batch_values[1:]:  # forward returns the value of the batch alone
        assert_same(got, want, f"{cls.__name__} forward")
    metric.reset()
    metric.update(preds, target)
    assert_same(metric.compute(), one_shot, f"{cls.__name__} after reset")


def test_all_functions_exported():
    names = [
        "accuracy",
        "precision",
        "recall",
        "f1_score",
        "fbeta_score",
        "confusion_matrix",
        "auroc",
        "average_precision",
        "roc",
        "precision_recall_curve",
        "matthews_corrcoef",
        "cohen_kappa",
        "hamming_distance",
        "jaccard_index",
        "specificity",
        "stat_scores",
        "mean_squared_error",
        "root_mean_squared_error",
        "mean_absolute_error",
        "mean_squared_log_error",
        "r2_score",
        "explained_variance",
        "mean_absolute_percentage_error",
        "pearson_corrcoef",
        "spearman_corrcoef",
        "peak_signal_noise_ratio",
        "structural_similarity_index_measure",
        "dice",
    ]
    assert all(callable(getattr(F, n)) for n in names)
