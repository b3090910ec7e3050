"""Functional ROC, precision-recall curve, AUROC and average precision.

``thresholds=None`` sorts all the scores (exact, like scikit-learn); an int or a list of
thresholds counts the samples in fixed bins instead (bounded memory in the metric classes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from declarative_train.metrics.functional import _curve_core as core
from declarative_train.metrics.functional import _curve_math as cm
from declarative_train.metrics.functional._checks import check_task_args

CURVE_AVERAGES = ("micro", "macro", "weighted", "none")
Counts = tuple[Tensor, Tensor, Tensor]


def exact_class_counts(
    task: str, probs: Tensor, target: Tensor, ignore_index: int | None, micro: bool
) -> tuple[list[Counts], Tensor]:
    """Per-class (or one micro) ``fps, tps, thresholds`` from all samples, and the supports."""
    onehot, keep = core.class_targets(task, target, probs.shape[1], ignore_index)
    support = (onehot * keep).sum(0)
    if micro:
        return [cm.micro_exact(probs, onehot, keep)], support
    return cm.per_class_exact(probs, onehot, keep), support


def binned_class_counts(
    hist: Tensor, thresholds: Tensor, micro: bool
) -> tuple[list[Counts], Tensor]:
    """Per-class (or one micro) ``fps, tps, thresholds`` from a binned histogram, and the supports."""
    support = hist[:, 1].sum(-1)
    if micro:
        hist = hist.sum(0, keepdim=True)
    fps, tps, thr = core.binned_counts(hist, thresholds)
    return [(f, t, thr) for f, t in zip(fps, tps)], support


def area_result(
    kind: str, task: str, counts: list[Counts], support: Tensor, average: str
) -> Tensor:
    """AUROC (``kind="auroc"``) or AP (``"ap"``) per class, averaged."""
    area = cm.auc_from_counts if kind == "auroc" else cm.ap_from_counts
    scores = torch.stack([area(f, t) for f, t, _ in counts])
    if task == "binary" or average == "micro":
        return scores[0].float()
    return cm.average(scores, support, average)


def curve_result(kind: str, task: str, counts: list[Counts], binned: bool) -> Any:
    """ROC (``kind="roc"``: fpr, tpr, thresholds) or PR curve (precision, recall, thresholds)."""
    fn = cm.roc_from_counts if kind == "roc" else cm.pr_from_counts
    curves = [fn(f, t, thr) for f, t, thr in counts]
    outs = [tuple(c.float() for c in curve) for curve in curves]
    if task == "binary":
        return outs[0]
    first, second, third = (list(x) for x in zip(*outs))
    if binned:
        return torch.stack(first), torch.stack(second), third[0]
    return first, second, third


def _counts(
    name: str,
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None,
    num_labels: int | None,
    thresholds: int | list[float] | Tensor | None,
    ignore_index: int | None,
    validate_args: bool,
    micro: bool,
) -> tuple[list[Counts], Tensor, bool]:
    thr = core.make_thresholds(name, thresholds)
    probs, tgt = core.format_scores(
        name, task, preds, target, num_classes, num_labels, ignore_index, validate_args
    )
    probs = core.scores_to_probs(task, probs)
    if thr is None:
        counts, support = exact_class_counts(task, probs, tgt, ignore_index, micro)
        return counts, support, False
    onehot, keep = core.class_targets(task, tgt, probs.shape[1], ignore_index)
    hist = core.binned_update(probs, onehot, keep, thr)
    counts, support = binned_class_counts(hist, thr, micro)
    return counts, support, True


def _area(
    kind: str,
    name: str,
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None,
    num_labels: int | None,
    average: str | None,
    thresholds: Any,
    ignore_index: int | None,
    validate_args: bool,
) -> Tensor:
    avg = check_task_args(name, task, num_classes, num_labels, average, averages=CURVE_AVERAGES)
    micro = avg == "micro" and task != "binary"
    counts, support, _ = _counts(
        name,
        preds,
        target,
        task,
        num_classes,
        num_labels,
        thresholds,
        ignore_index,
        validate_args,
        micro,
    )
    return area_result(kind, task, counts, support, avg)


def auroc(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "macro",
    thresholds: int | list[float] | Tensor | None = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Tensor:
    """Area under the ROC curve (one-vs-rest for multiclass); NaN for a class without positives
    or without negatives (left out of macro/weighted averages).

    Example:
        >>> import torch
        >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        tensor(0.7500)
    """
    return _area(
        "auroc",
        "auroc",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        thresholds,
        ignore_index,
        validate_args,
    )


def average_precision(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "macro",
    thresholds: int | list[float] | Tensor | None = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Tensor:
    """Average precision (area under the step-wise precision-recall curve, as scikit-learn).

    Example:
        >>> import torch
        >>> average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        tensor(0.8333)
    """
    return _area(
        "ap",
        "average_precision",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        thresholds,
        ignore_index,
        validate_args,
    )


def _curve(
    kind: str,
    name: str,
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None,
    num_labels: int | None,
    thresholds: Any,
    ignore_index: int | None,
    validate_args: bool,
) -> Any:
    check_task_args(name, task, num_classes, num_labels)
    counts, _, binned = _counts(
        name,
        preds,
        target,
        task,
        num_classes,
        num_labels,
        thresholds,
        ignore_index,
        validate_args,
        False,
    )
    return curve_result(kind, task, counts, binned)


def roc(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    thresholds: int | list[float] | Tensor | None = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Any:
    """ROC curve ``(fpr, tpr, thresholds)``, like ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

    Multiclass/multilabel: lists with one tensor per class (exact) or (K, T + 1) tensors (binned).

    Example:
        >>> import torch
        >>> fpr, tpr, thr = roc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        >>> fpr, tpr
        (tensor([0.0000, 0.0000, 0.5000, 0.5000, 1.0000]), tensor([0.0000, 0.5000, 0.5000, 1.0000, 1.0000]))
    """
    return _curve(
        "roc",
        "roc",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        thresholds,
        ignore_index,
        validate_args,
    )


def precision_recall_curve(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    thresholds: int | list[float] | Tensor | None = None,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Any:
    """Precision-recall curve ``(precision, recall, thresholds)`` like scikit-learn's.

    Example:
        >>> import torch
        >>> p, r, t = precision_recall_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        >>> p
        tensor([0.5000, 0.6667, 0.5000, 1.0000, 1.0000])
    """
    return _curve(
        "pr",
        "precision_recall_curve",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        thresholds,
        ignore_index,
        validate_args,
    )
