"""Bad input errors, doctests, lazy sklearn import, TensorMetric/NumpyMetric, SklearnMetric."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

import declarative_train.metrics as M
from declarative_train.metrics import functional as F


@pytest.mark.parametrize(
    "call, metric, arg",
    [
        (
            lambda: F.accuracy(
                torch.rand(4, 3), torch.tensor([0, 1, 2]), task="multiclass", num_classes=3
            ),
            "accuracy",
            "preds",
        ),
        (lambda: F.accuracy(torch.rand(4), torch.rand(4), task="binary"), "accuracy", "target"),
        (
            lambda: F.f1_score(
                torch.tensor([0, 1]), torch.tensor([0, 3]), task="multiclass", num_classes=3
            ),
            "f1_score",
            "target",
        ),
        (
            lambda: F.recall(
                torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]), task="binary"
            ),
            "recall",
            "preds",
        ),
        (
            lambda: F.precision(torch.tensor([0, 1]), torch.tensor([0, 1]), task="multiclass"),
            "precision",
            "num_classes",
        ),
        (
            lambda: F.precision(
                torch.tensor([0, 1]), torch.tensor([0, 1]), task="binary", average="mean"
            ),
            "precision",
            "average",
        ),
        (
            lambda: F.precision(torch.tensor([0, 1]), torch.tensor([0, 1]), task="multi"),
            "precision",
            "task",
        ),
        (
            lambda: F.auroc(
                torch.rand(3, 2), torch.tensor([0, 1, 2]), task="multiclass", num_classes=2
            ),
            "auroc",
            "target",
        ),
        (
            lambda: F.auroc(torch.rand(3), torch.tensor([0, 1, 1]), task="binary", thresholds=1),
            "auroc",
            "thresholds",
        ),
        (lambda: F.mean_squared_error(torch.rand(3), torch.rand(4)), "mean_squared_error", "preds"),
        (
            lambda: F.mean_absolute_error(torch.rand(3), torch.tensor([1.0, float("nan"), 2.0])),
            "mean_absolute_error",
            "target",
        ),
        (
            lambda: F.mean_squared_log_error(torch.tensor([-2.0]), torch.tensor([1.0])),
            "mean_squared_log_error",
            "preds",
        ),
        (
            lambda: F.r2_score(torch.rand(3), torch.rand(3), multioutput="avg"),
            "r2_score",
            "multioutput",
        ),
        (lambda: M.Accuracy(task="multilabel"), "Accuracy", "num_labels"),
        (lambda: M.F1Score(task="binary", zero_division=2), "F1Score", "zero_division"),
        (
            lambda: M.ConfusionMatrix(task="binary", normalize="rows"),
            "ConfusionMatrix",
            "normalize",
        ),
        (
            lambda: M.Accuracy(task="binary").update(torch.rand(2, 2), torch.tensor([0, 1])),
            "Accuracy",
            "preds",
        ),
        (
            lambda: M.StructuralSimilarityIndexMeasure()(
                torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5)
            ),
            "StructuralSimilarityIndexMeasure",
            "preds",
        ),
        (lambda: M.SklearnMetric("no_such_score"), "SklearnMetric", "metric"),
    ],
)
def test_bad_input_raises_value_error_naming_metric_and_argument(call, metric, arg):
    with pytest.raises(ValueError) as info:
        call()
    assert metric in str(info.value) and f"`{arg}`" in str(info.value)


def test_validate_args_false_skips_checks():
    preds = torch.tensor([0.2, float("nan"), 0.9])
    F.accuracy(preds, torch.tensor([0, 1, 1]), task="binary", validate_args=False)  # no error
    m = M.MeanSquaredError(validate_args=False)
    m.update(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 1.0]))
    assert torch.isnan(m.compute())


def test_doctests_of_the_package():
    failures = 0
    for info in pkgutil.walk_packages(M.__path__, prefix="declarative_train.metrics."):
        module = importlib.import_module(info.name)
        failures += doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE).failed
    assert failures == 0


def test_importing_metrics_does_not_import_sklearn_or_scipy():
    code = "import sys, declarative_train.metrics; print('sklearn' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


class MaxAbs(M.TensorMetric):
    def forward(self, preds, target):
        return (preds - target).abs().max()


class NumpyMedian(M.NumpyMetric):
    def forward(self, preds, target):
        assert isinstance(preds, np.ndarray)
        return np.median(np.abs(preds - target))


def test_tensor_and_numpy_metric():
    m = MaxAbs(reduce_op="max")
    assert m(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 5.0])) == 3.0
    m.update(torch.tensor([0.0]), torch.tensor([10.0]))
    assert m.compute() == 10.0
    mean = MaxAbs(reduce_op="mean")
    mean(torch.tensor([1.0]), torch.tensor([2.0]))
    mean(torch.tensor([1.0]), torch.tensor([4.0]))
    assert mean.compute() == 2.0
    med = NumpyMedian(reduce_op="sum")
    out = med(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 0.0, 0.0]))
    assert isinstance(out, torch.Tensor) and out.item() == 2.0
    coll = M.MetricCollection({"max": MaxAbs(reduce_op="max"), "med": NumpyMedian()})
    coll.update(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    assert coll.compute() == {
        "max": torch.tensor(3.0),
        "med": torch.tensor(2.0, dtype=torch.float32),
    }
    with pytest.raises(ValueError, match="reduce_op"):
        MaxAbs(reduce_op="median")


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("balanced_accuracy_score", {}),
        ("f1_score", {"average": "macro"}),
        ("cohen_kappa_score", {"weights": "linear"}),
    ],
)
def test_sklearn_metric(name, kwargs):
    rng = np.random.default_rng(0)
    p, t = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    m = M.SklearnMetric(name, **kwargs)
    m.update(torch.tensor(p[:20]), torch.tensor(t[:20]))
    m.update(torch.tensor(p[20:]), torch.tensor(t[20:]))
    ref = getattr(skm, name)(t, p, **kwargs)
    assert abs(m.compute().item() - ref) < 1e-6


def test_sklearn_metric_with_callable_and_transform():
    logits = torch.randn(30, 3)
    target = torch.randint(0, 3, (30,))
    m = M.SklearnMetric(skm.accuracy_score, preds_transform=lambda x: x.argmax(1))
    m.update(logits, target)
    assert abs(m.compute().item() - (logits.argmax(1) == target).float().mean().item()) < 1e-6
