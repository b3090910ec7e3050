"""A metric: balanced accuracy (the mean of per-class recall), synced across processes."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics import Metric


class BalancedAccuracy(Metric):
    """Mean recall over the classes present in the targets (as ``sklearn.metrics.balanced_accuracy_score``).

    ``preds`` are logits or probabilities ``(N, C)``, or class labels ``(N,)``.
    """

    higher_is_better = True
    hits: Tensor
    support: Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("hits", torch.zeros(num_classes, dtype=torch.long), reduce="sum")
        self.add_state("support", torch.zeros(num_classes, dtype=torch.long), reduce="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        labels = preds.argmax(dim=-1) if preds.ndim > 1 else preds
        self.support += torch.bincount(target, minlength=self.num_classes)
        self.hits += torch.bincount(target[labels == target], minlength=self.num_classes)

    def compute(self) -> Tensor:
        present = self.support > 0
        return (self.hits[present].double() / self.support[present]).mean().float()
