"""Turn classification inputs into confusion counts without host syncs.

Scores are turned into labels on the device: logits (any value outside [0, 1]) go through a
sigmoid with ``torch.where``, so nothing is read back to the host. Counts are accumulated with
``index_add_`` (``bincount`` would sync on CUDA).
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_probs(preds: Tensor, multiclass_dim: int | None = None) -> Tensor:
    """Scores to probabilities: sigmoid (or softmax over ``multiclass_dim``) when logits."""
    preds = preds.float() if preds.dtype in (torch.float16, torch.bfloat16) else preds
    is_logit = ((preds < 0) | (preds > 1)).any()
    squashed = preds.sigmoid() if multiclass_dim is None else preds.softmax(multiclass_dim)
    return torch.where(is_logit, squashed, preds)


def _count(idx: Tensor, weight: Tensor | None, size: int) -> Tensor:
    src = torch.ones_like(idx) if weight is None else weight
    return torch.zeros(size, dtype=torch.long, device=idx.device).index_add_(0, idx, src)


def binary_confmat(
    preds: Tensor, target: Tensor, threshold: float, ignore_index: int | None
) -> Tensor:
    """2x2 counts ``[[tn, fp], [fn, tp]]`` (rows: target, cols: prediction)."""
    preds, target = preds.reshape(-1), target.reshape(-1).long()
    if preds.is_floating_point():
        preds = to_probs(preds) > threshold
    idx = target * 2 + preds.long()
    weight = None
    if ignore_index is not None:
        keep = target != ignore_index
        idx, weight = torch.where(keep, idx, 0), keep.long()
    return _count(idx, weight, 4).view(2, 2)


def multiclass_labels(preds: Tensor) -> Tensor:
    """Predicted labels: argmax over dim 1 for (N, C, ...) scores, else the labels themselves."""
    return preds.argmax(1) if preds.is_floating_point() else preds


def multiclass_confmat(
    preds: Tensor, target: Tensor, num_classes: int, ignore_index: int | None
) -> Tensor:
    """(C, C) counts (rows: target, cols: prediction)."""
    labels = multiclass_labels(preds).reshape(-1).long()
    target = target.reshape(-1).long()
    idx = target * num_classes + labels
    weight = None
    if ignore_index is not None:
        keep = target != ignore_index
        idx, weight = torch.where(keep, idx, 0), keep.long()
    return _count(idx, weight, num_classes * num_classes).view(num_classes, num_classes)


def multilabel_confmat(
    preds: Tensor, target: Tensor, num_labels: int, threshold: float, ignore_index: int | None
) -> Tensor:
    """(L, 2, 2) counts, one ``[[tn, fp], [fn, tp]]`` per label."""
    if preds.is_floating_point():
        preds = to_probs(preds) > threshold
    target = target.long()
    shape = [1, num_labels] + [1] * (target.ndim - 2)
    offset = torch.arange(num_labels, device=target.device).view(shape) * 4
    idx = (target * 2 + preds.long() + offset).reshape(-1)
    weight = None
    if ignore_index is not None:
        keep = (target != ignore_index).reshape(-1)
        idx, weight = torch.where(keep, idx, 0), keep.long()
    return _count(idx, weight, num_labels * 4).view(num_labels, 2, 2)


def multiclass_topk_stats(
    preds: Tensor, target: Tensor, num_classes: int, top_k: int, ignore_index: int | None
) -> Tensor:
    """(C, 4) counts ``tp, fp, tn, fn`` where a prediction is any of the ``top_k`` classes."""
    scores = preds.movedim(1, -1).reshape(-1, num_classes)
    target = target.reshape(-1).long()
    hit = torch.zeros_like(scores, dtype=torch.long).scatter_(
        1, scores.topk(top_k, dim=1).indices, 1
    )
    keep = torch.ones_like(target) if ignore_index is None else (target != ignore_index).long()
    safe = torch.where(keep.bool(), target, 0)
    truth = torch.zeros_like(hit).scatter_(1, safe.unsqueeze(1), 1) * keep.unsqueeze(1)
    hit = hit * keep.unsqueeze(1)
    tp = (hit * truth).sum(0)
    fp = hit.sum(0) - tp
    fn = truth.sum(0) - tp
    tn = keep.sum() - tp - fp - fn
    return torch.stack([tp, fp, tn, fn], dim=1)
