"""ROC / precision-recall curves, their areas, and averaging over classes."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics.functional._curve_core import exact_counts


def roc_from_counts(fps: Tensor, tps: Tensor, thr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``fpr, tpr, thresholds`` with a first point (0, 0) at threshold ``inf`` (as scikit-learn).

    Rates are NaN when there are no negatives (fpr) or no positives (tpr).
    """
    zero = fps.new_zeros(1)
    fps, tps = torch.cat([zero, fps]), torch.cat([zero, tps])
    thr = torch.cat([thr.new_full((1,), float("inf")), thr])
    return _rate(fps), _rate(tps), thr


def _rate(counts: Tensor) -> Tensor:
    total = counts[-1]
    if bool(total <= 0):
        return torch.full_like(counts, float("nan"))
    return counts / total


def auc_from_counts(fps: Tensor, tps: Tensor) -> Tensor:
    """Area under the ROC curve by the trapezoidal rule (NaN when only one class is present)."""
    if fps.numel() == 0 or bool(fps[-1] <= 0) or bool(tps[-1] <= 0):
        return torch.tensor(float("nan"), dtype=torch.float64, device=fps.device)
    zero = fps.new_zeros(1)
    x = torch.cat([zero, fps]) / fps[-1]
    y = torch.cat([zero, tps]) / tps[-1]
    return ((x[1:] - x[:-1]) * (y[1:] + y[:-1])).sum() / 2


def pr_from_counts(fps: Tensor, tps: Tensor, thr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``precision, recall, thresholds`` in scikit-learn's order (thresholds ascending, then (1, 0))."""
    ps = tps + fps
    precision = torch.where(
        ps != 0, tps / torch.where(ps != 0, ps, torch.ones_like(ps)), torch.zeros_like(ps)
    )
    recall = torch.ones_like(tps) if tps.numel() == 0 or bool(tps[-1] == 0) else tps / tps[-1]
    one = precision.new_ones(1)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), one * 0]), thr.flip(0)


def ap_from_counts(fps: Tensor, tps: Tensor) -> Tensor:
    """Average precision ``sum (R_i - R_{i-1}) P_i`` (0 when there are no positives, as scikit-learn)."""
    if tps.numel() == 0 or bool(tps[-1] <= 0):
        return torch.tensor(0.0, dtype=torch.float64, device=tps.device)
    ps = tps + fps
    precision = torch.where(
        ps != 0, tps / torch.where(ps != 0, ps, torch.ones_like(ps)), torch.zeros_like(ps)
    )
    recall = tps / tps[-1]
    steps = torch.cat([recall[:1], recall[1:] - recall[:-1]])
    return (steps * precision).sum().clamp(min=0)


def average(scores: Tensor, support: Tensor, average: str) -> Tensor:
    """Average per-class areas: ``macro`` (NaN classes left out), ``weighted`` by support, ``none``."""
    if average == "none":
        return scores.float()
    keep = ~torch.isnan(scores)
    if not bool(keep.any()):
        return torch.tensor(float("nan"))
    kept, w = scores[keep], support[keep].double()
    if average == "weighted" and bool(w.sum() > 0):
        return ((kept * w).sum() / w.sum()).float()
    return kept.mean().float()


def per_class_exact(
    probs: Tensor, onehot: Tensor, keep: Tensor
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``exact_counts`` for each column (class) of ``probs`` over the kept rows."""
    out = []
    for k in range(probs.shape[1]):
        mask = keep[:, k]
        scores, hits = probs[:, k], onehot[:, k]
        if not bool(mask.all()):
            scores, hits = scores[mask], hits[mask]
        out.append(exact_counts(scores, hits))
    return out


def micro_exact(probs: Tensor, onehot: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``exact_counts`` over every (sample, class) element as one binary problem."""
    mask = keep.reshape(-1)
    scores, hits = probs.reshape(-1), onehot.reshape(-1)
    if not bool(mask.all()):
        scores, hits = scores[mask], hits[mask]
    return exact_counts(scores, hits)
