"""Common base of the classification metrics that accumulate confusion counts."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from declarative_train.metrics.functional import _stats
from declarative_train.metrics.functional._checks import AVERAGES, check_task_args
from declarative_train.metrics.metric import Metric


class CountMetric(Metric):
    """Accumulates a confusion-count state (see :func:`_stats.update_state`) summed over batches.

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        num_classes: number of classes (multiclass).
        num_labels: number of labels (multilabel).
        average: ``"micro"``, ``"macro"``, ``"weighted"`` or ``"none"`` (ignored for binary).
        threshold: probability threshold for binary/multilabel scores (logits are sigmoided).
        top_k: a multiclass prediction is correct if the target is among the ``top_k`` scores.
        ignore_index: target value to leave out.
        zero_division: value of a 0/0 score: 0, 1 or nan.
        validate_args: check inputs on every update (one host sync per batch); ``False`` for speed.
        kwargs: options of :class:`Metric` (``sync_on_compute``, ``dist_sync_on_step`` ...).
    """

    confmat: Tensor
    default_average = "micro"
    averages: tuple[str, ...] = AVERAGES
    supports_top_k = True

    def __init__(
        self,
        task: str,
        num_classes: int | None = None,
        num_labels: int | None = None,
        average: str | None = None,
        threshold: float = 0.5,
        top_k: int = 1,
        ignore_index: int | None = None,
        zero_division: float = 0.0,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        if top_k != 1 and not self.supports_top_k:
            raise ValueError(f"{name}: argument `top_k` is not supported")
        average = self.default_average if average is None else average
        self.average = check_task_args(
            name,
            task,
            num_classes,
            num_labels,
            average,
            threshold,
            top_k,
            zero_division,
            self.averages,
        )
        self.task = task
        self.num_classes = num_classes
        self.num_labels = num_labels
        self.threshold = float(threshold)
        self.top_k = top_k
        self.ignore_index = ignore_index
        self.zero_division = float(zero_division)
        self.validate_args = validate_args
        shape = _stats.state_shape(task, num_classes, num_labels, top_k)
        self.add_state(
            "confmat", torch.zeros(shape, dtype=torch.long), reduce="sum", persistent=True
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add the counts of one batch of ``preds`` (labels, probabilities or logits) and ``target``."""
        self.confmat += _stats.update_state(
            type(self).__name__,
            self.task,
            preds,
            target,
            self.num_classes,
            self.num_labels,
            self.threshold,
            self.top_k,
            self.ignore_index,
            self.validate_args,
        )

    def compute(self) -> Tensor:
        """The metric over everything accumulated since the last reset."""
        return self._from_state(self.confmat)

    def _from_state(self, state: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        n = self.num_classes if self.task == "multiclass" else self.num_labels
        return f"{type(self).__name__}(task={self.task!r}, n={n}, average={self.average!r})"
