"""A task with its own steps: label-smoothed training loss, plain cross-entropy for evaluation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from declarative_train import StepOutput, Task


class SmoothedClassifier(Task):
    """Trains ``net`` with label smoothing; evaluates with plain cross-entropy on the logits.

    Args:
        net: the network, inputs -> logits.
        smoothing: how much probability mass each target spreads over the other classes.
    """

    def __init__(self, net: nn.Module, smoothing: float = 0.1) -> None:
        super().__init__()
        self.net = net
        self.train_loss = nn.CrossEntropyLoss(label_smoothing=smoothing)
        self.eval_loss = nn.CrossEntropyLoss()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        inputs, target = batch
        return self.train_loss(self(inputs), target)

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        inputs, target = batch
        logits = self(inputs)
        return StepOutput(loss=self.eval_loss(logits, target), preds=logits, target=target)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(inputs).argmax(dim=-1)
