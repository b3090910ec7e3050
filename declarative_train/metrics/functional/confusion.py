"""Functional confusion matrix, Matthews correlation and Cohen's kappa."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics.functional import _stats
from declarative_train.metrics.functional._checks import check_choice, check_task_args

NORMALIZE = (None, "true", "pred", "all", "none")
KAPPA_WEIGHTS = (None, "linear", "quadratic", "none")


def _state(
    name: str,
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None,
    num_labels: int | None,
    threshold: float,
    ignore_index: int | None,
    validate_args: bool,
) -> Tensor:
    check_task_args(name, task, num_classes, num_labels, "micro", threshold)
    return _stats.update_state(
        name,
        task,
        preds,
        target,
        num_classes,
        num_labels,
        threshold,
        1,
        ignore_index,
        validate_args,
    )


def normalize_confmat(cm: Tensor, normalize: str | None) -> Tensor:
    """Normalise over targets (``true``, rows), predictions (``pred``) or ``all``; 0/0 -> 0."""
    if normalize in (None, "none"):
        return cm
    cm = cm.double()
    if normalize == "true":
        den = cm.sum(-1, keepdim=True)
    elif normalize == "pred":
        den = cm.sum(-2, keepdim=True)
    else:
        den = cm.sum((-2, -1), keepdim=True)
    return _stats.safe_divide(cm, den.expand_as(cm), 0.0).float()


def _as_matrix(task: str, state: Tensor) -> Tensor:
    """Binary/multilabel: the 2x2 matrix (summed over labels); multiclass: the CxC matrix."""
    return state.sum(0) if task == "multilabel" else state


def mcc_from_state(task: str, state: Tensor) -> Tensor:
    """Matthews correlation from a confusion matrix (0 when undefined, as scikit-learn)."""
    cm = _as_matrix(task, state).double()
    t_sum, p_sum = cm.sum(1), cm.sum(0)
    n = cm.sum()
    cov_tp = cm.trace() * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    den = cov_pp * cov_tt
    if bool(den == 0):
        return torch.tensor(0.0, device=cm.device)
    return (cov_tp / den.sqrt()).float()


def kappa_from_state(task: str, state: Tensor, weights: str | None = None) -> Tensor:
    """Cohen's kappa from a confusion matrix (NaN when undefined, as scikit-learn)."""
    cm = _as_matrix(task, state).double()
    k = cm.shape[0]
    total = cm.sum()
    nan = torch.tensor(float("nan"), device=cm.device)
    if bool(total == 0):
        return nan
    expected = torch.outer(cm.sum(1), cm.sum(0)) / total
    idx = torch.arange(k, device=cm.device, dtype=torch.float64)
    if weights in (None, "none"):
        w = 1 - torch.eye(k, dtype=torch.float64, device=cm.device)
    elif weights == "linear":
        w = (idx[:, None] - idx[None, :]).abs()
    else:
        w = (idx[:, None] - idx[None, :]) ** 2
    den = (w * expected).sum()
    if bool(den == 0):
        return nan
    return (1 - (w * cm).sum() / den).float()


def confusion_matrix(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    threshold: float = 0.5,
    ignore_index: int | None = None,
    normalize: str | None = None,
    validate_args: bool = True,
) -> Tensor:
    """Confusion matrix (rows: target, cols: prediction): (2, 2), (C, C) or (L, 2, 2).

    Example:
        >>> import torch
        >>> confusion_matrix(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 2]), task="multiclass", num_classes=3)
        tensor([[1, 0, 0],
                [0, 1, 1],
                [0, 1, 0]])
    """
    check_choice("confusion_matrix", "normalize", normalize, NORMALIZE)
    state = _state(
        "confusion_matrix",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        threshold,
        ignore_index,
        validate_args,
    )
    return normalize_confmat(state, normalize)


def matthews_corrcoef(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    threshold: float = 0.5,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Tensor:
    """Matthews correlation coefficient (multilabel: over all elements as one binary problem).

    Example:
        >>> import torch
        >>> matthews_corrcoef(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor(0.5774)
    """
    state = _state(
        "matthews_corrcoef",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        threshold,
        ignore_index,
        validate_args,
    )
    return mcc_from_state(task, state)


def cohen_kappa(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    threshold: float = 0.5,
    ignore_index: int | None = None,
    weights: str | None = None,
    validate_args: bool = True,
) -> Tensor:
    """Cohen's kappa; ``weights`` None, ``"linear"`` or ``"quadratic"``.

    Example:
        >>> import torch
        >>> cohen_kappa(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor(0.5000)
    """
    check_choice("cohen_kappa", "weights", weights, KAPPA_WEIGHTS)
    state = _state(
        "cohen_kappa",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        threshold,
        ignore_index,
        validate_args,
    )
    return kappa_from_state(task, state, weights)
