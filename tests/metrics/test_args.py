"""ClassificationArgs: one checked settings object shared by the functions and the classes."""

from __future__ import annotations

import inspect

import attrs
import pytest
import torch

import declarative_train.metrics as M
from declarative_train.metrics import functional as F
from declarative_train.metrics.classification._base import ClassificationMetric
from declarative_train.metrics.functional import args as args_module
from declarative_train.metrics.functional.args import ClassificationArgs

P, T = torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1, 1, 2])


def test_args_are_frozen_and_normalised():
    a = ClassificationArgs(metric="m", task="multiclass", num_classes=3, average=None, threshold=1)
    assert a.average == "none" and a.threshold == 1.0 and isinstance(a.threshold, float)
    assert a.num_outputs == 3
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.task = "binary"  # type: ignore[misc]
    assert ClassificationArgs(metric="m", task="binary", zero_division="nan").zero_division != 0


@pytest.mark.parametrize(
    "settings, arg",
    [
        ({"task": "multi"}, "task"),
        ({"task": "binary", "average": "mean"}, "average"),
        ({"task": "multiclass"}, "num_classes"),
        ({"task": "multiclass", "num_classes": 1}, "num_classes"),
        ({"task": "multilabel"}, "num_labels"),
        ({"task": "binary", "threshold": 1.5}, "threshold"),
        ({"task": "binary", "threshold": "0.5"}, "threshold"),
        ({"task": "multiclass", "num_classes": 3, "top_k": 0}, "top_k"),
        ({"task": "multiclass", "num_classes": 3, "top_k": 4}, "top_k"),
        ({"task": "binary", "top_k": 2}, "top_k"),
        ({"task": "binary", "zero_division": 2}, "zero_division"),
        ({"task": "binary", "zero_division": None}, "zero_division"),
    ],
)
def test_bad_settings_name_metric_and_argument(settings, arg):
    with pytest.raises(ValueError, match=rf"^my_metric: argument `{arg}` "):
        ClassificationArgs(metric="my_metric", **settings)


def test_settings_are_checked_once_not_per_update(monkeypatch):
    calls = []
    check = args_module._check_settings
    monkeypatch.setattr(args_module, "_check_settings", lambda a: calls.append(a) or check(a))
    acc = M.Accuracy(task="multiclass", num_classes=3)
    auroc = M.AUROC(task="multiclass", num_classes=3)
    for _ in range(3):
        acc.update(P, T)
        auroc.update(torch.randn(4, 3), T)
    acc.compute(), auroc.compute()
    assert len(calls) == 2
    F.accuracy(P, T, task="multiclass", num_classes=3)
    assert len(calls) == 3


def test_classes_and_functions_build_the_same_args():
    kw = {"task": "multiclass", "num_classes": 3}
    assert M.Accuracy(**kw).args == ClassificationArgs(metric="Accuracy", **kw)
    assert M.JaccardIndex(**kw).args.average == "macro"  # class default
    assert M.JaccardIndex(**kw, average="micro").args.average == "micro"
    assert M.AUROC(**kw).args.average == "macro"
    assert M.ROC(**kw).args.average == "none"
    assert M.F1Score(**kw, average=None).args.average == "micro"  # None: the class default
    f1 = M.F1Score(**kw, average="none", threshold=0.3, ignore_index=-1, zero_division=1)
    assert f1.args == ClassificationArgs(
        metric="F1Score", average="none", threshold=0.3, ignore_index=-1, zero_division=1, **kw
    )
    assert repr(f1) == "F1Score(task='multiclass', n=3, average='none')"


@pytest.mark.parametrize(
    "call",
    [
        lambda: F.accuracy(P, T, task="multiclass", num_classes=3, averag="macro"),
        lambda: F.roc(P.float(), T, task="binary", top_k=2),
        lambda: F.auroc(P.float(), T, task="binary", threshold=0.5),
        lambda: F.confusion_matrix(P, T, task="binary", average="macro"),
        lambda: F.auroc(P.float(), T, "binary", 3),  # options are keyword-only
    ],
)
def test_functions_reject_options_they_do_not_take(call):
    with pytest.raises(TypeError):
        call()


def test_functions_accept_the_documented_call_forms():
    assert F.accuracy(P, T, task="multiclass", num_classes=3, average="macro") == pytest.approx(
        5 / 6
    )
    assert F.fbeta_score(P, T, "multiclass", 2.0, num_classes=3) == F.fbeta_score(
        P, T, task="multiclass", beta=2.0, num_classes=3
    )
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    assert F.auroc(scores, torch.tensor([0, 0, 1, 1]), task="binary", thresholds=101) == 0.75
    fpr, _, _ = F.roc(scores, torch.tensor([0, 0, 1, 1]), task="binary", thresholds=[0.0, 0.5, 1.0])
    assert fpr.shape == (4,)


OPEN_SIGNATURES = {"Metric", "SklearnMetric", "TensorMetric", "NumpyMetric"}  # **kwargs by design


def _exported_metric_classes():
    return [
        getattr(M, n)
        for n in M.__all__
        if isinstance(getattr(M, n), type) and issubclass(getattr(M, n), M.Metric)
    ]


@pytest.mark.parametrize("cls", _exported_metric_classes(), ids=lambda c: c.__name__)
def test_class_signatures_name_every_argument(cls):
    """The config validator binds ``inspect.signature(cls)``: no ``**kwargs`` hides a typo."""
    if cls.__name__ in OPEN_SIGNATURES:
        return
    params = inspect.signature(cls).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert set(M.MetricOptions.__optional_keys__) <= set(params)
    if issubclass(cls, ClassificationMetric):
        assert {"task", "num_classes", "num_labels", "average", "validate_args"} <= set(params)
    with pytest.raises(TypeError):
        inspect.signature(cls).bind(averag="macro")


def test_settings_after_task_are_keywords():
    params = inspect.signature(M.Accuracy).parameters
    assert [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["task"]
    assert M.Accuracy("multiclass", num_classes=3, average="macro")(P, T) == pytest.approx(5 / 6)
    with pytest.raises(TypeError):
        M.Accuracy("multiclass", 3)  # loud, not a setting bound to the wrong name
    assert list(inspect.signature(M.FBetaScore).parameters)[:2] == ["task", "beta"]
    assert M.FBetaScore("binary", 0.5).beta == 0.5
    assert "beta" not in inspect.signature(M.F1Score).parameters
    assert "threshold" not in inspect.signature(M.AUROC).parameters
    assert "thresholds" not in inspect.signature(M.Accuracy).parameters
    m = M.ConfusionMatrix("multiclass", "true", num_classes=3, sync_on_compute=False)
    assert m.normalize == "true" and not m.sync_on_compute
    with pytest.raises(TypeError):
        M.F1Score(task="binary", averag="macro")


def test_validate_args_can_be_switched_off_and_on_again() -> None:
    """The executor checks an evaluation's first batch, then turns the per-batch checks off."""
    from declarative_train.metrics import AUROC, Accuracy

    for metric in (Accuracy(task="multiclass", num_classes=3), AUROC(task="binary")):
        metric.validate_args = False
        assert metric.args.validate_args is False
        metric.validate_args = True
        assert metric.args.validate_args is True and metric.validate_args
