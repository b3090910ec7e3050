"""Confusion-count states of the classification metrics and the averaging of scores."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics.functional import _format
from declarative_train.metrics.functional.args import ClassificationArgs


def state_shape(args: ClassificationArgs) -> tuple[int, ...]:
    """Shape of the count state for these settings (see :func:`update_state`)."""
    if args.task == "binary":
        return (2, 2)
    n = args.num_outputs
    if args.task == "multilabel":
        return (n, 2, 2)
    return (n, 4) if args.top_k > 1 else (n, n)


def update_state(args: ClassificationArgs, preds: Tensor, target: Tensor) -> Tensor:
    """Counts of one batch: binary (2, 2), multiclass (C, C) or (C, 4) for top_k > 1, multilabel (L, 2, 2)."""
    if args.validate_args:
        args.check_inputs(preds, target)
    task, ignore_index = args.task, args.ignore_index
    if task == "binary":
        return _format.binary_confmat(preds, target, args.threshold, ignore_index)
    if task == "multilabel":
        return _format.multilabel_confmat(
            preds, target, args.num_outputs, args.threshold, ignore_index
        )
    if args.top_k > 1:
        return _format.multiclass_topk_stats(
            preds, target, args.num_outputs, args.top_k, ignore_index
        )
    return _format.multiclass_confmat(preds, target, args.num_outputs, ignore_index)


def stats(args: ClassificationArgs, state: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``tp, fp, tn, fn`` per class (binary: one class) as float64 vectors."""
    state = state.double()
    task = args.task
    if task == "binary":
        state = state.unsqueeze(0)
        task = "multilabel"
    if task == "multilabel":
        return state[:, 1, 1], state[:, 0, 1], state[:, 0, 0], state[:, 1, 0]
    if args.top_k > 1:
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
    args: ClassificationArgs, num: Tensor, den: Tensor, tp: Tensor, fp: Tensor, fn: Tensor
) -> Tensor:
    """Per-class ``num / den`` reduced by ``args.average`` (micro: ratio of the sums)."""
    if args.average == "micro" and args.task != "binary":
        out = safe_divide(num.sum(), den.sum(), args.zero_division)
    else:
        scores = safe_divide(num, den, args.zero_division)
        out = average_scores(scores, tp + fn, (tp + fp + fn) > 0, args.average, args.task)
    return out.float()
