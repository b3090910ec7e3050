"""Tasks: what one step computes. The executor runs them; users subclass :class:`Task`.

A task is an ``nn.Module`` holding the network and the loss. ``training_step`` returns the loss;
``validation_step``/``test_step`` return a :class:`StepOutput` whose ``preds``/``target`` feed
the metrics; ``predict_step`` returns predictions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn

from declarative_train.utils.tree import move_to_device

F = TypeVar("F", bound=Callable[..., Any])


class StepOutput(NamedTuple):
    """What an evaluation step returns: the loss and what metrics compare."""

    loss: torch.Tensor
    preds: torch.Tensor | None = None
    target: torch.Tensor | None = None


class Task(nn.Module):
    """Base class for custom training logic.

    Subclasses implement ``training_step`` (return the loss tensor) and usually
    ``validation_step`` (return a :class:`StepOutput`); ``test_step`` defaults to
    ``validation_step`` and ``predict_step`` to ``forward`` on the batch's inputs.
    """

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Return the loss to minimise for one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        """Return loss, predictions and targets for one validation batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement validation_step")

    def test_step(self, batch: Any, batch_idx: int) -> StepOutput:
        """Return loss, predictions and targets for one test batch (default: as validation)."""
        return self.validation_step(batch, batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> Any:
        """Return predictions for one batch (default: ``forward`` of the first element)."""
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(inputs)


class SupervisedTask(Task):
    """``(inputs, target)`` batches, ``net(inputs)`` outputs, ``loss(outputs, target)``."""

    def __init__(self, net: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.loss = loss

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def outputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network outputs in the form the loss and metrics take."""
        return self(inputs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        inputs, target = batch
        return self.loss(self.outputs(inputs), target)

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        inputs, target = batch
        preds = self.outputs(inputs)
        return StepOutput(self.loss(preds, target), preds, target)


class Classification(SupervisedTask):
    """Classification: the network returns logits; metrics receive the logits."""


class Regression(SupervisedTask):
    """Regression: a trailing output dimension of size 1 is squeezed to match the target."""

    def outputs(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self(inputs)
        return out.squeeze(-1) if out.ndim > 1 and out.shape[-1] == 1 else out


class LanguageModel(Task):
    """Next-token prediction: ``(inputs[B, T], targets[B, T])`` batches of token ids, ``net(inputs)``
    returns logits ``[B, T, vocab]``; the loss is the mean cross-entropy over all tokens.

    Evaluation steps give the metrics the logits and the targets (a perplexity metric takes them
    as they are); ``predict_step`` returns the logits (argmax over the last dimension for the most
    likely next token).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.net(inputs)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``logits[..., vocab]`` against ``targets[...]``."""
        return nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten())

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        return self.loss(self(inputs), targets)

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        inputs, targets = batch
        logits = self(inputs)
        return StepOutput(self.loss(logits, targets), logits, targets)


def auto_move_data(method: F) -> F:
    """Decorate a module's method so tensor arguments move to the module's device first.

    For inference outside the executor: ``model(x_on_cpu)`` works when the model is on a GPU.
    The device is that of the module's first parameter (or buffer).
    """

    @functools.wraps(method)
    def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        tensor: torch.Tensor | None = next(self.parameters(), None)
        if tensor is None:
            tensor = next(self.buffers(), None)
        if tensor is not None:
            args = move_to_device(args, tensor.device)
            kwargs = move_to_device(kwargs, tensor.device)
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
