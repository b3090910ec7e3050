"""Confusion-count states of the classification metrics and the averaging of scores."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics.functional import _format
from declarative_train.metrics.functional._checks import check_inputs


def state_shape(
    task: str, num_classes: int | None, num_labels: int | None, top_k: int = 1
) -> tuple[int, ...]:
    """Shape of the count state for a task (see :func:`update_state`)."""
    if task == "binary":
        return (2, 2)
    if task == "multilabel":
        assert num_labels is not None
        return (num_labels, 2, 2)
    assert num_classes is not None
    return (num_classes, 4) if top_k > 1 else (num_classes, num_classes)


def update_state(
    name: str,
    task: str,
    preds: Tensor,
    target: Tensor,
    num_classes: int | None = None,
    num_labels: int | None = None,
    threshold: float = 0.5,
    top_k: int = 1,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Tensor:
    """Counts of one batch: binary (2, 2), multiclass (C, C) or (C, 4) for top_k > 1, multilabel (L, 2, 2)."""
    if validate_args:
        check_inputs(name, task, preds, target, num_classes, num_labels, ignore_index)
    if task == "binary":
        return _format.binary_confmat(preds, target, threshold, ignore_index)
    if task == "multilabel":
        assert num_labels is not None
        return _format.multilabel_confmat(preds, target, num_labels, threshold, ignore_index)
    assert num_classes is not None
    if top_k > 1:
        return _format.multiclass_topk_stats(preds, target, num_classes, top_k, ignore_index)
    return _format.multiclass_confmat(preds, target, num_classes, ignore_index)


def stats(task: str, state: Tensor, top_k: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``tp, fp, tn, fn`` per class (binary: one class) as float64 vectors."""
    state = state.double()
    if task == "binary":
        state = state.unsqueeze(0)
        task = "multilabel"
    if task == "multilabel":
        return state[:, 1, 1], state[:, 0, 1], state[:, 0, 0], state[:, 1, 0]
    if top_k > 1:
        return state[:, 0], state[:, 1], state[:, 2], state[:, 3]
    tp = state.diagonal()
    fp = state.sum(0) - tp
    fn = state.sum(1) - tp
    return tp, fp, state.sum() - tp - fp - fn, fn


def safe_divide(num: Tensor, den: Tensor, zero_division: float) -> Tensor:
    """``num / den`` with ``zero_division`` where ``den == 0``."""
    fill = torch.full_like(num, float(zero_division))
    return torch.where(den == 0, fill, num / torch.where(den == 0, torch.ones_like(den), den))


def average_scores(
    scores: Tensor, support: Tensor, present: Tensor, average: str, task: str
) -> Tensor:
    """Average per-class scores like scikit-learn.

    ``macro`` is the mean over the classes present in preds or target (multiclass) or over
    all labels (multilabel); ``weighted`` weights by support and falls back to ``macro`` when all
    supports are zero; NaN scores are left out of both. ``none`` returns the per-class vector.
    """
    if task == "binary":
        return scores[0]
    if average == "none":
        return scores
    keep = ~torch.isnan(scores)
    if task == "multiclass":
        keep = keep & present
    if not bool(keep.any()):
        return torch.tensor(float("nan"), dtype=scores.dtype, device=scores.device)
    kept = scores[keep]
    if average == "weighted":
        weights = support[keep]
        if bool(weights.sum() > 0):
            return (kept * weights).sum() / weights.sum()
    return kept.mean()


def reduce(
    task: str,
    num: Tensor,
    den: Tensor,
    tp: Tensor,
    fp: Tensor,
    fn: Tensor,
    average: str,
    zero_division: float,
) -> Tensor:
    """Per-class ``num / den`` reduced by ``average`` (micro: ratio of the sums)."""
    if average == "micro" and task != "binary":
        out = safe_divide(num.sum(), den.sum(), zero_division)
    else:
        scores = safe_divide(num, den, zero_division)
        out = average_scores(scores, tp + fn, (tp + fp + fn) > 0, average, task)
    return out.float()
