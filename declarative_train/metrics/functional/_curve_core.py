"""Counting true/false positives per threshold: exactly (sorting) or in fixed bins."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics.functional._checks import fail
from declarative_train.metrics.functional._format import to_probs
from declarative_train.metrics.functional.args import ClassificationArgs


def make_thresholds(name: str, thresholds: int | list[float] | Tensor | None) -> Tensor | None:
    """``None`` (exact), an int (that many evenly spaced in [0, 1]) or ascending values."""
    if thresholds is None:
        return None
    if isinstance(thresholds, int):
        if thresholds < 2:
            raise fail(name, "thresholds", f"as an int must be >= 2, got {thresholds}")
        return torch.linspace(0, 1, thresholds, dtype=torch.float32)
    out = torch.as_tensor(thresholds, dtype=torch.float32).reshape(-1)
    if out.numel() < 2 or bool((out[1:] <= out[:-1]).any()):
        raise fail(name, "thresholds", "must hold at least two strictly increasing values")
    return out


def format_scores(args: ClassificationArgs, preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Raw float scores (M, K) and targets: (M,) labels for binary/multiclass, (M, L) for multilabel.

    Scores are not squashed here; :func:`scores_to_probs` does that (on all data for exact curves).
    """
    task = args.task
    if args.validate_args:
        if task == "multiclass" and not preds.is_floating_point():
            raise fail(
                args.metric,
                "preds",
                "must hold float scores of shape (N, C, ...) for task='multiclass'",
            )
        args.check_inputs(preds, target)
    scores = preds if preds.is_floating_point() else preds.float()
    if task == "binary":
        return scores.reshape(-1, 1), target.reshape(-1)
    if scores.ndim > 2:
        scores = scores.movedim(1, -1)
    scores = scores.reshape(-1, scores.shape[-1])
    if task == "multiclass":
        return scores, target.reshape(-1)
    return scores, (target.movedim(1, -1) if target.ndim > 2 else target).reshape(
        -1, scores.shape[-1]
    )


def scores_to_probs(task: str, scores: Tensor) -> Tensor:
    """Logits (any value outside [0, 1]) to probabilities: softmax (multiclass) or sigmoid."""
    return to_probs(scores, multiclass_dim=1 if task == "multiclass" else None)


def class_targets(args: ClassificationArgs, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class 0/1 targets (M, K) and a keep mask (M, K)."""
    keep = (
        torch.ones_like(target, dtype=torch.bool)
        if args.ignore_index is None
        else target != args.ignore_index
    )
    if args.task == "multilabel":
        return torch.where(keep, target, 0).long(), keep
    if args.task == "binary":
        return torch.where(keep, target, 0).long().unsqueeze(1), keep.unsqueeze(1)
    k = args.num_outputs
    onehot = torch.zeros(target.shape[0], k, dtype=torch.long, device=target.device)
    onehot.scatter_(1, torch.where(keep, target, 0).long().unsqueeze(1), 1)
    return onehot * keep.unsqueeze(1), keep.unsqueeze(1).expand(-1, k)


def binned_update(probs: Tensor, onehot: Tensor, keep: Tensor, thresholds: Tensor) -> Tensor:
    """Histogram (K, 2, T + 1) of negatives/positives by number of thresholds <= score."""
    m, k = probs.shape
    t = thresholds.numel()
    bucket = torch.bucketize(
        probs.contiguous(), thresholds.to(probs.device, probs.dtype), right=True
    )
    cls = torch.arange(k, device=probs.device).unsqueeze(0)
    idx = ((cls * 2 + onehot) * (t + 1) + bucket).reshape(-1)
    hist = torch.zeros(k * 2 * (t + 1), dtype=torch.long, device=probs.device)
    return hist.index_add_(0, idx, keep.reshape(-1).long()).view(k, 2, t + 1)


def binned_counts(hist: Tensor, thresholds: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``fps, tps`` (K, T) for thresholds in descending order, and those thresholds."""
    suffix = hist.flip(-1).cumsum(-1).flip(-1).double()  # suffix[..., b] = count with bucket >= b
    fps, tps = suffix[:, 0, 1:], suffix[:, 1, 1:]  # threshold i counts buckets > i
    return fps.flip(-1), tps.flip(-1), thresholds.flip(0).to(hist.device)


def exact_counts(scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``fps, tps`` at each distinct score (descending) and those scores, from all samples."""
    sorted_scores, order = torch.sort(scores, descending=True)
    hits = target[order].double()
    n = sorted_scores.numel()
    if n == 0:
        empty = torch.zeros(0, dtype=torch.float64, device=scores.device)
        return empty, empty, sorted_scores
    last = torch.ones(n, dtype=torch.bool, device=scores.device)
    last[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    ends = last.nonzero().squeeze(1)
    tps = hits.cumsum(0)[ends]
    fps = (ends + 1).double() - tps
    return fps, tps, sorted_scores[ends]
