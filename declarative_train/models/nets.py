"""Reference networks for flat feature vectors and small images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from declarative_train.errors import ArgumentError


class MLP(nn.Sequential):
    """Fully connected layers with ReLU and optional dropout between them."""

    def __init__(
        self, in_features: int, hidden_sizes: Sequence[int], out_features: int, dropout: float = 0.0
    ) -> None:
        _check_sizes("MLP", in_features=in_features, out_features=out_features, hidden_sizes=hidden_sizes)
        if not 0 <= dropout < 1:
            raise ArgumentError("MLP", "dropout", f"must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)


class Linear(nn.Linear):
    """One linear layer (logistic or linear regression, depending on the loss)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        _check_sizes("Linear", in_features=in_features, out_features=out_features)
        super().__init__(in_features, out_features)


class CNN(nn.Module):
    """Two or more 3x3 conv blocks, global average pooling and a linear head.

    Flat inputs of ``prod(input_shape)`` features are reshaped to ``input_shape`` (C, H, W).
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], out_features: int) -> None:
        super().__init__()
        _check_sizes("CNN", out_features=out_features, input_shape=input_shape, channels=channels)
        self.input_shape = tuple(input_shape)
        blocks: list[nn.Module] = []
        width = self.input_shape[0]
        for size in channels:
            blocks += [nn.Conv2d(width, size, 3, padding=1), nn.BatchNorm2d(size), nn.ReLU()]
            width = size
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x.view(x.shape[0], *self.input_shape)
        return self.head(self.features(x).mean(dim=(2, 3)))


def _check_sizes(owner: str, **sizes: int | Sequence[int]) -> None:
    """Every size (or every entry of a list of sizes) must be an int >= 1."""
    for argument, value in sizes.items():
        values = list(value) if isinstance(value, Sequence) else [value]
        empty = not values and argument != "hidden_sizes"  # an MLP may have no hidden layer
        if empty or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ArgumentError(owner, argument, f"must hold ints >= 1, got {value!r}")
