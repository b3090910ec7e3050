"""Functional ROC, precision-recall curve, AUROC and average precision.

``thresholds=None`` sorts all the scores (exact, like scikit-learn); an int or a list of
thresholds counts the samples in fixed bins instead (bounded memory in the metric classes).
The functions take ``preds, target, task`` and the keyword options of
:class:`~declarative_train.metrics.functional.args.AreaOptions` (``auroc``,
``average_precision``) or :class:`~declarative_train.metrics.functional.args.CurveOptions`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import _curve_core as core
from declarative_train.metrics.functional import _curve_math as cm
from declarative_train.metrics.functional.args import (
    AREA_KEYS,
    CURVE_KEYS,
    AreaOptions,
    ClassificationArgs,
    CurveOptions,
)

Counts = tuple[Tensor, Tensor, Tensor]
Thresholds = int | list[float] | Tensor | None


def exact_class_counts(
    args: ClassificationArgs, probs: Tensor, target: Tensor, micro: bool
) -> tuple[list[Counts], Tensor]:
    """Per-class (or one micro) ``fps, tps, thresholds`` from all samples, and the supports."""
    onehot, keep = core.class_targets(args, target)
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


def is_micro(args: ClassificationArgs) -> bool:
    """Whether all classes are pooled into one binary problem (``average="micro"``)."""
    return args.average == "micro" and args.task != "binary"


def area_result(
    kind: str, args: ClassificationArgs, counts: list[Counts], support: Tensor
) -> Tensor:
    """AUROC (``kind="auroc"``) or AP (``"ap"``) per class, averaged."""
    area = cm.auc_from_counts if kind == "auroc" else cm.ap_from_counts
    scores = torch.stack([area(f, t) for f, t, _ in counts])
    if is_micro(args) or args.task == "binary":
        return scores[0].float()
    return cm.average(scores, support, args.average)


def curve_result(kind: str, args: ClassificationArgs, counts: list[Counts], binned: bool) -> Any:
    """ROC (``kind="roc"``: fpr, tpr, thresholds) or PR curve (precision, recall, thresholds)."""
    fn = cm.roc_from_counts if kind == "roc" else cm.pr_from_counts
    curves = [fn(f, t, thr) for f, t, thr in counts]
    outs = [tuple(c.float() for c in curve) for curve in curves]
    if args.task == "binary":
        return outs[0]
    first, second, third = (list(x) for x in zip(*outs))
    if binned:
        return torch.stack(first), torch.stack(second), third[0]
    return first, second, third


def _counts(
    args: ClassificationArgs, preds: Tensor, target: Tensor, thresholds: Thresholds
) -> tuple[list[Counts], Tensor, bool]:
    thr = core.make_thresholds(args.metric, thresholds)
    probs, tgt = core.format_scores(args, preds, target)
    probs = core.scores_to_probs(args.task, probs)
    if thr is None:
        counts, support = exact_class_counts(args, probs, tgt, is_micro(args))
        return counts, support, False
    onehot, keep = core.class_targets(args, tgt)
    hist = core.binned_update(probs, onehot, keep, thr)
    counts, support = binned_class_counts(hist, thr, is_micro(args))
    return counts, support, True


def _area(
    kind: str, name: str, preds: Tensor, target: Tensor, task: str, options: AreaOptions
) -> Tensor:
    args = ClassificationArgs.from_options(name, task, options, AREA_KEYS, average="macro")
    counts, support, _ = _counts(args, preds, target, options.get("thresholds"))
    return area_result(kind, args, counts, support)


def auroc(preds: Tensor, target: Tensor, task: str, **options: Unpack[AreaOptions]) -> Tensor:
    """Area under the ROC curve (one-vs-rest for multiclass); NaN for a class without positives
    or without negatives (left out of macro/weighted averages).

    ``options``: see :class:`~declarative_train.metrics.functional.args.AreaOptions`.

    Example:
        >>> import torch
        >>> auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        tensor(0.7500)
    """
    return _area("auroc", "auroc", preds, target, task, options)


def average_precision(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[AreaOptions]
) -> Tensor:
    """Average precision (area under the step-wise precision-recall curve, as scikit-learn).

    ``options`` as :func:`auroc`.

    Example:
        >>> import torch
        >>> average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        tensor(0.8333)
    """
    return _area("ap", "average_precision", preds, target, task, options)


def _curve(
    kind: str, name: str, preds: Tensor, target: Tensor, task: str, options: CurveOptions
) -> Any:
    args = ClassificationArgs.from_options(name, task, options, CURVE_KEYS, average="none")
    counts, _, binned = _counts(args, preds, target, options.get("thresholds"))
    return curve_result(kind, args, counts, binned)


def roc(preds: Tensor, target: Tensor, task: str, **options: Unpack[CurveOptions]) -> Any:
    """ROC curve ``(fpr, tpr, thresholds)``, like ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

    Multiclass/multilabel: lists with one tensor per class (exact) or (K, T + 1) tensors (binned).
    ``options``: see :class:`~declarative_train.metrics.functional.args.CurveOptions`.

    Example:
        >>> import torch
        >>> fpr, tpr, thr = roc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        >>> fpr, tpr
        (tensor([0.0000, 0.0000, 0.5000, 0.5000, 1.0000]), tensor([0.0000, 0.5000, 0.5000, 1.0000, 1.0000]))
    """
    return _curve("roc", "roc", preds, target, task, options)


def precision_recall_curve(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[CurveOptions]
) -> Any:
    """Precision-recall curve ``(precision, recall, thresholds)`` like scikit-learn's.

    ``options`` as :func:`roc`.

    Example:
        >>> import torch
        >>> p, r, t = precision_recall_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]), task="binary")
        >>> p
        tensor([0.5000, 0.6667, 0.5000, 1.0000, 1.0000])
    """
    return _curve("pr", "precision_recall_curve", preds, target, task, options)
