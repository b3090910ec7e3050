"""Histograms of parameters and their gradients, for TensorBoard's HISTOGRAMS tab."""

from __future__ import annotations

from typing import Any

import torch

from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, TrainingContext


class ParameterHistograms(Callback):
    """Logs ``weights/<name>`` and ``grads/<name>`` every ``every_n_epochs`` epochs.

    Weights are taken at the end of the epoch; gradients are those of the epoch's first optimizer
    step (captured by one-shot hooks armed at the epoch's start, so other epochs cost nothing).
    Loggers without histograms ignore them. Copies to the host happen only in logged epochs.
    """

    def __init__(self, every_n_epochs: int = 1, weights: bool = True, grads: bool = True) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"ParameterHistograms: every_n_epochs must be >= 1, got {every_n_epochs}")
        self.every_n_epochs = every_n_epochs
        self.weights = weights
        self.grads = grads
        self._grads: dict[str, torch.Tensor] = {}
        self._hooks: list[Any] = []

    def attach(self, context: TrainingContext) -> None:
        if self.grads:
            self.listen(context, Event.EPOCH_START, self._arm)
        self.listen(context, Event.EPOCH_END, self._log, every=self.every_n_epochs)

    def _due(self, context: TrainingContext) -> bool:
        return (context.state.epoch + 1) % self.every_n_epochs == 0

    def _arm(self, context: TrainingContext) -> None:
        if not self._due(context) or not context.loggers:
            return
        for name, param in context.task.named_parameters():
            if param.requires_grad:
                self._hooks.append(param.register_post_accumulate_grad_hook(self._capture(name)))

    def _capture(self, name: str) -> Any:
        def hook(param: torch.Tensor) -> None:
            if name not in self._grads and param.grad is not None:
                self._grads[name] = param.grad.detach().clone()
        return hook

    def _log(self, context: TrainingContext) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        step = context.state.global_step
        for logger in context.loggers:
            if self.weights:
                for name, param in context.task.named_parameters():
                    logger.log_histogram(f"weights/{name}", param.detach(), step)
            for name, grad in self._grads.items():
                logger.log_histogram(f"grads/{name}", grad, step)
        self._grads.clear()
