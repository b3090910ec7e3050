"""Functional accuracy, precision, recall, F-scores, specificity, Hamming distance, Dice, stat scores.

Every function takes ``preds, target, task`` and the keyword options of
:class:`~declarative_train.metrics.functional.args.ClassificationOptions`; what each option means
is documented once, on :class:`~declarative_train.metrics.functional.args.ClassificationArgs`.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import _stats
from declarative_train.metrics.functional.args import (
    CLASSIFICATION_KEYS,
    ClassificationArgs,
    ClassificationOptions,
)

# ----------------------------------------------------------------------------- from counts


def accuracy_from_state(args: ClassificationArgs, state: Tensor) -> Tensor:
    """Accuracy from accumulated counts (see :func:`accuracy`)."""
    tp, fp, tn, fn = _stats.stats(args, state)
    if args.task == "multiclass":
        return _stats.reduce(args, tp, tp + fn, tp, fp, fn)
    return _stats.reduce(args, tp + tn, tp + tn + fp + fn, tp, fp, fn)


def fbeta_from_state(args: ClassificationArgs, state: Tensor, beta: float) -> Tensor:
    """F-beta from accumulated counts (see :func:`fbeta_score`)."""
    tp, fp, _, fn = _stats.stats(args, state)
    b2 = beta * beta
    return _stats.reduce(args, (1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, tp, fp, fn)


def ratio_from_state(kind: str, args: ClassificationArgs, state: Tensor) -> Tensor:
    """``precision``, ``recall``, ``specificity``, ``jaccard`` or ``dice`` from accumulated counts."""
    tp, fp, tn, fn = _stats.stats(args, state)
    num, den = {
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "jaccard": (tp, tp + fp + fn),
        "dice": (2 * tp, 2 * tp + fp + fn),
    }[kind]
    return _stats.reduce(args, num, den, tp, fp, fn)


def stat_scores_from_state(args: ClassificationArgs, state: Tensor) -> Tensor:
    """``[tp, fp, tn, fn, support]``: (5,) for binary/micro, (C, 5) for none, float mean for macro/weighted."""
    tp, fp, tn, fn = _stats.stats(args, state)
    table = torch.stack([tp, fp, tn, fn, tp + fn], dim=1)
    if args.task == "binary":
        return table[0].long()
    if args.average == "micro":
        return table.sum(0).long()
    if args.average == "none":
        return table.long()
    if args.average == "weighted":
        w = table[:, 4]
        return ((table * w[:, None]).sum(0) / w.sum().clamp(min=1)).float()
    return table.mean(0).float()


# ----------------------------------------------------------------------------- public functions


def _counts(
    name: str, preds: Tensor, target: Tensor, task: str, options: ClassificationOptions
) -> tuple[ClassificationArgs, Tensor]:
    args = ClassificationArgs.from_options(name, task, options, CLASSIFICATION_KEYS)
    return args, _stats.update_state(args, preds, target)


def accuracy(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[ClassificationOptions]
) -> Tensor:
    """Accuracy. Multiclass: fraction of correct samples (micro) or per-class recall averaged;
    binary/multilabel: fraction of correct elements (per label for macro/weighted/none).

    ``options``: see :class:`~declarative_train.metrics.functional.args.ClassificationArgs`.

    Example:
        >>> import torch
        >>> accuracy(torch.tensor([0, 2, 1, 2]), torch.tensor([0, 1, 1, 2]), task="multiclass", num_classes=3)
        tensor(0.7500)
    """
    return accuracy_from_state(*_counts("accuracy", preds, target, task, options))


def hamming_distance(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[ClassificationOptions]
) -> Tensor:
    """Hamming distance, ``1 - accuracy`` with the same averaging (``options`` as :func:`accuracy`).

    Example:
        >>> import torch
        >>> hamming_distance(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 1], [1, 1]]), task="multilabel", num_labels=2)
        tensor(0.2500)
    """
    return 1 - accuracy_from_state(*_counts("hamming_distance", preds, target, task, options))


class CountFunction(Protocol):
    """The call form of the functions of this module that take no extra argument."""

    def __call__(
        self, preds: Tensor, target: Tensor, task: str, **options: Unpack[ClassificationOptions]
    ) -> Tensor: ...


def _ratio_fn(kind: str, public: str, doc_value: str) -> CountFunction:
    def fn(
        preds: Tensor, target: Tensor, task: str, **options: Unpack[ClassificationOptions]
    ) -> Tensor:
        return ratio_from_state(kind, *_counts(public, preds, target, task, options))

    fn.__name__ = fn.__qualname__ = public
    fn.__doc__ = (
        f"{public.replace('_', ' ').capitalize()} for ``task`` binary, multiclass or multilabel.\n\n"
        "    ``options``: see :class:`~declarative_train.metrics.functional.args.ClassificationArgs`"
        " (``average``: micro | macro | weighted | none; ``zero_division``: 0, 1 or nan).\n\n"
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
    **options: Unpack[ClassificationOptions],
) -> Tensor:
    """F-beta score ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)`` (``options`` as :func:`accuracy`).

    Example:
        >>> import torch
        >>> fbeta_score(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary", beta=2.0)
        tensor(0.8333)
    """
    if options.get("validate_args", True):
        check_beta("fbeta_score", beta)
    return fbeta_from_state(*_counts("fbeta_score", preds, target, task, options), float(beta))


def check_beta(name: str, beta: float) -> None:
    """Raise unless ``beta`` is a positive number."""
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"{name}: argument `beta` must be a positive float, got {beta!r}")


def f1_score(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[ClassificationOptions]
) -> Tensor:
    """F1 score, the harmonic mean of precision and recall (``options`` as :func:`accuracy`).

    Example:
        >>> import torch
        >>> f1_score(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor(0.6667)
    """
    return fbeta_from_state(*_counts("f1_score", preds, target, task, options), 1.0)


def stat_scores(
    preds: Tensor, target: Tensor, task: str, **options: Unpack[ClassificationOptions]
) -> Tensor:
    """``[tp, fp, tn, fn, support]`` (summed for micro, per class for none, averaged otherwise).

    ``options`` as :func:`accuracy` (``zero_division`` has no effect).

    Example:
        >>> import torch
        >>> stat_scores(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), task="binary")
        tensor([1, 1, 2, 0, 1])
    """
    return stat_scores_from_state(*_counts("stat_scores", preds, target, task, options))
