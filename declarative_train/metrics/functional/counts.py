"""Functional accuracy, precision, recall, F-scores, specificity, Hamming distance, Dice, stat scores."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from declarative_train.metrics.functional import _stats
from declarative_train.metrics.functional._checks import check_task_args

# ----------------------------------------------------------------------------- from counts


def accuracy_from_state(
    task: str, state: Tensor, average: str, top_k: int = 1, zero_division: float = 0.0
) -> Tensor:
    """Accuracy from accumulated counts (see :func:`accuracy`)."""
    tp, fp, tn, fn = _stats.stats(task, state, top_k)
    if task == "multiclass":
        return _stats.reduce(task, tp, tp + fn, tp, fp, fn, average, zero_division)
    return _stats.reduce(task, tp + tn, tp + tn + fp + fn, tp, fp, fn, average, zero_division)


def fbeta_from_state(
    task: str, state: Tensor, beta: float, average: str, top_k: int = 1, zero_division: float = 0.0
) -> Tensor:
    """F-beta from accumulated counts (see :func:`fbeta_score`)."""
    tp, fp, _, fn = _stats.stats(task, state, top_k)
    b2 = beta * beta
    return _stats.reduce(
        task, (1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, tp, fp, fn, average, zero_division
    )


def ratio_from_state(
    kind: str, task: str, state: Tensor, average: str, top_k: int = 1, zero_division: float = 0.0
) -> Tensor:
    """``precision``, ``recall``, ``specificity``, ``jaccard`` or ``dice`` from accumulated counts."""
    tp, fp, tn, fn = _stats.stats(task, state, top_k)
    num, den = {
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "jaccard": (tp, tp + fp + fn),
        "dice": (2 * tp, 2 * tp + fp + fn),
    }[kind]
    return _stats.reduce(task, num, den, tp, fp, fn, average, zero_division)


def stat_scores_from_state(task: str, state: Tensor, average: str, top_k: int = 1) -> Tensor:
    """``[tp, fp, tn, fn, support]``: (5,) for binary/micro, (C, 5) for none, float mean for macro/weighted."""
    tp, fp, tn, fn = _stats.stats(task, state, top_k)
    table = torch.stack([tp, fp, tn, fn, tp + fn], dim=1)
    if task == "binary":
        return table[0].long()
    if average == "micro":
        return table.sum(0).long()
    if average == "none":
        return table.long()
    if average == "weighted":
        w = table[:, 4]
        return ((table * w[:, None]).sum(0) / w.sum().clamp(min=1)).float()
    return table.mean(0).float()


# ----------------------------------------------------------------------------- public functions


def _state(
    name: str,
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None,
    num_labels: int | None,
    average: str | None,
    threshold: float,
    top_k: int,
    ignore_index: int | None,
    zero_division: float,
    validate_args: bool,
) -> tuple[str, Tensor]:
    avg = check_task_args(
        name, task, num_classes, num_labels, average, threshold, top_k, zero_division
    )
    state = _stats.update_state(
        name,
        task,
        preds,
        target,
        num_classes,
        num_labels,
        threshold,
        top_k,
        ignore_index,
        validate_args,
    )
    return avg, state


def accuracy(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "micro",
    threshold: float = 0.5,
    top_k: int = 1,
    ignore_index: int | None = None,
    zero_division: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    """Accuracy. Multiclass: fraction of correct samples (micro) or per-class recall averaged;
    binary/multilabel: fraction of correct elements (per label for macro/weighted/none).

    Example:
        >>> import torch
        >>> accuracy(torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1, 1, 2]), task="multiclass", num_classes=3)
        tensor(0.7500)
    """
    avg, state = _state(
        "accuracy",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        threshold,
        top_k,
        ignore_index,
        zero_division,
        validate_args,
    )
    return accuracy_from_state(task, state, avg, top_k, zero_division)


def hamming_distance(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "micro",
    threshold: float = 0.5,
    top_k: int = 1,
    ignore_index: int | None = None,
    zero_division: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    """Hamming distance, ``1 - accuracy`` with the same averaging.

    Example:
        >>> import torch
        >>> hamming_distance(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 1], [1, 1]]), task="multilabel", num_labels=2)
        tensor(0.2500)
    """
    avg, state = _state(
        "hamming_distance",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        threshold,
        top_k,
        ignore_index,
        zero_division,
        validate_args,
    )
    return 1 - accuracy_from_state(task, state, avg, top_k, zero_division)


def _ratio_fn(kind: str, public: str, doc_value: str) -> Callable[..., Tensor]:
    def fn(
        preds: Tensor,
        target: Tensor,
        task: str,
        num_classes: int | None = None,
        num_labels: int | None = None,
        average: str | None = "micro",
        threshold: float = 0.5,
        top_k: int = 1,
        ignore_index: int | None = None,
        zero_division: float = 0.0,
        validate_args: bool = True,
    ) -> Tensor:
        avg, state = _state(
            public,
            preds,
            target,
            task,
            num_classes,
            num_labels,
            average,
            threshold,
            top_k,
            ignore_index,
            zero_division,
            validate_args,
        )
        return ratio_from_state(kind, task, state, avg, top_k, zero_division)

    fn.__name__ = fn.__qualname__ = public
    fn.__doc__ = (
        f"{public.replace('_', ' ').capitalize()} for ``task`` binary, multiclass or multilabel.\n\n"
        "    ``average``: micro | macro | weighted | none; ``zero_division``: 0, 1 or nan.\n\n"
        "    Example:\n"
        "        >>> import torch\n"
        f'        >>> {public}(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")\n'
        f"        tensor({doc_value})\n"
    )
    return fn


precision = _ratio_fn("precision", "precision", "0.5000")
recall = _ratio_fn("recall", "recall", "1.")
specificity = _ratio_fn("specificity", "specificity", "0.6667")
jaccard_index = _ratio_fn("jaccard", "jaccard_index", "0.5000")
dice = _ratio_fn("dice", "dice", "0.6667")


def fbeta_score(
    preds: Tensor,
    target: Tensor,
    task: str,
    beta: float = 1.0,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "micro",
    threshold: float = 0.5,
    top_k: int = 1,
    ignore_index: int | None = None,
    zero_division: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    """F-beta score ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``.

    Example:
        >>> import torch
        >>> fbeta_score(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary", beta=2.0)
        tensor(0.8333)
    """
    if validate_args and not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"fbeta_score: argument `beta` must be a positive float, got {beta!r}")
    avg, state = _state(
        "fbeta_score",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        threshold,
        top_k,
        ignore_index,
        zero_division,
        validate_args,
    )
    return fbeta_from_state(task, state, float(beta), avg, top_k, zero_division)


def f1_score(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "micro",
    threshold: float = 0.5,
    top_k: int = 1,
    ignore_index: int | None = None,
    zero_division: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    """F1 score, the harmonic mean of precision and recall.

    Example:
        >>> import torch
        >>> f1_score(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor(0.6667)
    """
    avg, state = _state(
        "f1_score",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        threshold,
        top_k,
        ignore_index,
        zero_division,
        validate_args,
    )
    return fbeta_from_state(task, state, 1.0, avg, top_k, zero_division)


def stat_scores(
    preds: Tensor,
    target: Tensor,
    task: str,
    num_classes: int | None = None,
    num_labels: int | None = None,
    average: str | None = "micro",
    threshold: float = 0.5,
    top_k: int = 1,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> Tensor:
    """``[tp, fp, tn, fn, support]`` (summed for micro, per class for none, averaged otherwise).

    Example:
        >>> import torch
        >>> stat_scores(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor([1, 1, 2, 0, 1])
    """
    avg, state = _state(
        "stat_scores",
        preds,
        target,
        task,
        num_classes,
        num_labels,
        average,
        threshold,
        top_k,
        ignore_index,
        0.0,
        validate_args,
    )
    return stat_scores_from_state(task, state, avg, top_k)
