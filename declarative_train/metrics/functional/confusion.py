"""Functional confusion matrix, Matthews correlation and Cohen's kappa."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import _stats
from declarative_train.metrics.functional._checks import check_choice
from declarative_train.metrics.functional.args import (
    CONFUSION_KEYS,
    ClassificationArgs,
    ConfusionOptions,
)

NORMALIZE = (None, "true", "pred", "all", "none")
KAPPA_WEIGHTS = (None, "linear", "quadratic", "none")


def _confmat(
    name: str, preds: Tensor, target: Tensor, task: str, options: ConfusionOptions
) -> tuple[ClassificationArgs, Tensor]:
    args = ClassificationArgs.from_options(name, task, options, CONFUSION_KEYS)
    return args, _stats.update_state(args, preds, target)


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


def _as_matrix(args: ClassificationArgs, state: Tensor) -> Tensor:
    """Binary/multilabel: the 2x2 matrix (summed over labels); multiclass: the CxC matrix."""
    return state.sum(0) if args.task == "multilabel" else state


def mcc_from_state(args: ClassificationArgs, state: Tensor) -> Tensor:
    """Matthews correlation from a confusion matrix (0 when undefined, as scikit-learn)."""
    cm = _as_matrix(args, state).double()
    t_sum, p_sum = cm.sum(1), cm.sum(0)
    n = cm.sum()
    cov_tp = cm.trace() * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    den = cov_pp * cov_tt
    if bool(den == 0):
        return torch.tensor(0.0, device=cm.device)
    return (cov_tp / den.sqrt()).float()


def kappa_from_state(args: ClassificationArgs, state: Tensor, weights: str | None = None) -> Tensor:
    """Cohen's kappa from a confusion matrix (NaN when undefined, as scikit-learn)."""
    cm = _as_matrix(args, state).double()
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
    *,
    normalize: str | None = None,
    **options: Unpack[ConfusionOptions],
) -> Tensor:
    """Confusion matrix (rows: target, cols: prediction): (2, 2), (C, C) or (L, 2, 2).

    ``normalize``: None, ``"true"``, ``"pred"`` or ``"all"``; ``options``: ``num_classes``,
    ``num_labels``, ``threshold``, ``ignore_index``, ``validate_args`` (see
    :class:`~declarative_train.metrics.functional.args.ClassificationArgs`).

    Example:
        >>> import torch
        >>> confusion_matrix(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 2]), task="multiclass", num_classes=3)
        tensor([[1, 0, 0],
                [0, 1, 1],
                [0, 1, 0]])
    """
    check_choice("confusion_matrix", "normalize", normalize, NORMALIZE)
    _, state = _confmat("confusion_matrix", preds, target, task, options)
    return normalize_confmat(state, normalize)


def matthews_corrcoef(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[ConfusionOptions]
) -> Tensor:
    """Matthews correlation coefficient (multilabel: over all elements as one binary problem).

    ``options`` as :func:`confusion_matrix`.

    Example:
        >>> import torch
        >>> matthews_corrcoef(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor(0.5774)
    """
    return mcc_from_state(*_confmat("matthews_corrcoef", preds, target, task, options))


def cohen_kappa(
    preds: Tensor,
    target: Tensor,
    task: str,
    *,
    weights: str | None = None,
    **options: Unpack[ConfusionOptions],
) -> Tensor:
    """Cohen's kappa; ``weights`` None, ``"linear"`` or ``"quadratic"``; ``options`` as
    :func:`confusion_matrix`.

    Example:
        >>> import torch
        >>> cohen_kappa(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor(0.5000)
    """
    check_choice("cohen_kappa", "weights", weights, KAPPA_WEIGHTS)
    args, state = _confmat("cohen_kappa", preds, target, task, options)
    return kappa_from_state(args, state, weights)
