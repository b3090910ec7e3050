"""``higher_is_better``: declared by every shipped metric, inferred for scikit-learn functions."""

from __future__ import annotations

import pytest
import torch

import declarative_train.metrics as M
from declarative_train.metrics.sklearn_bridge import infer_higher_is_better

#: metrics whose value has no better direction (or, for the generic bases, no fixed one)
NO_DIRECTION = {
    "Metric",
    "ConfusionMatrix",
    "ROC",
    "PrecisionRecallCurve",
    "StatScores",
    "TensorMetric",
    "NumpyMetric",
    "SklearnMetric",
}
LOWER_IS_BETTER = {
    "HammingDistance",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogError",
    "Perplexity",
    "RootMeanSquaredError",
}


def _exported_metric_classes() -> list[type[M.Metric]]:
    out = []
    for name in M.__all__:
        obj = getattr(M, name)
        if isinstance(obj, type) and issubclass(obj, M.Metric):
            out.append(obj)
    return out


@pytest.mark.parametrize("cls", _exported_metric_classes(), ids=lambda c: c.__name__)
def test_every_exported_metric_declares_its_direction(cls):
    """Set in the class body or in a direct base that sets it, never left to ``Metric``'s default."""
    declared_by = [c for c in (cls, *cls.__bases__) if "higher_is_better" in vars(c)]
    assert declared_by, f"{cls.__name__} does not declare higher_is_better"
    assert cls is M.Metric or declared_by[0] is not M.Metric
    expected = None if cls.__name__ in NO_DIRECTION else cls.__name__ not in LOWER_IS_BETTER
    assert cls.higher_is_better is expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("accuracy_score", True),
        ("balanced_accuracy_score", True),
        ("f1_score", True),
        ("roc_auc_score", True),
        ("r2_score", True),
        ("d2_absolute_error_score", True),
        ("matthews_corrcoef", True),
        ("cosine_similarity", True),
        ("mean_squared_error", False),
        ("max_error", False),
        ("log_loss", False),
        ("brier_score_loss", False),
        ("hamming_loss", False),
        ("mean_poisson_deviance", False),
        ("davies_bouldin_score", False),
        ("auc", None),
        ("roc_curve", None),
        ("confusion_matrix", None),
        ("<lambda>", None),
    ],
)
def test_sklearn_direction_inferred_from_the_name(name, expected):
    assert infer_higher_is_better(name) is expected


def test_sklearn_metric_direction_per_instance():
    assert M.SklearnMetric("mean_squared_error").higher_is_better is False
    assert M.SklearnMetric("f1_score", average="macro").higher_is_better is True
    assert M.SklearnMetric("roc_curve").higher_is_better is None
    assert M.SklearnMetric("roc_curve", higher_is_better=True).higher_is_better is True

    def my_error(y, p):
        return 0.0

    assert M.SklearnMetric(my_error).higher_is_better is False
    assert M.SklearnMetric.higher_is_better is None  # the class itself has no direction


def test_collection_exposes_and_clone_keeps_directions():
    coll = M.MetricCollection(
        {
            "acc": M.Accuracy(task="multiclass", num_classes=3),
            "mse": M.MeanSquaredError(),
            "cm": M.ConfusionMatrix(task="binary"),
            "ll": M.SklearnMetric("log_loss"),
        },
        prefix="train/",
    )
    val = coll.clone(prefix="val/")
    want = {"val/acc": True, "val/mse": False, "val/cm": None, "val/ll": False}
    assert {k: m.higher_is_better for k, m in val.items()} == want
    assert val["val/acc"].higher_is_better is True  # by result key ...
    assert val["mse"].higher_is_better is False  # ... or by member name
    assert coll["train/ll"].higher_is_better is False


def test_direction_survives_state_dict_round_trip():
    m = M.SklearnMetric("max_error")
    m.update(torch.tensor([1.0]), torch.tensor([2.0]))
    n = M.SklearnMetric("max_error")
    n.load_state_dict(m.state_dict())
    assert n.higher_is_better is False
