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
    """Conv blocks that halve the image down to a small map, then a linear head on the flattened map.

    Each entry of ``channels`` is one block: ``convs_per_block`` 3x3 convolutions (batch norm,
    ReLU), then 2x downsampling (``pool``: ``avg`` or ``max`` pooling, or ``stride``: the block's
    last convolution has stride 2). A side is halved only while the result stays >= ``head_size``,
    so the layout follows ``input_shape``: on 8x8 digits two blocks give 4x4 then 2x2, and a third
    block keeps 2x2; a 32x32 image goes 16x16, 8x8, ... and whatever remains above ``head_size``
    is averaged down to ``head_size`` x ``head_size`` (``head_size=1`` is global average
    pooling). The map is flattened (channels x head_size x head_size features), passed through
    dropout, and a linear layer gives ``out_features``.

    Inputs are (N, C, H, W), or flat (N, C*H*W) reshaped to ``input_shape`` (C, H, W).
    """

    POOLS = ("avg", "max", "stride")

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int],
        out_features: int,
        convs_per_block: int = 1,
        pool: str = "avg",
        head_size: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_sizes("CNN", out_features=out_features, input_shape=input_shape, channels=channels,
                     convs_per_block=convs_per_block, head_size=head_size)
        if len(input_shape) != 3:
            raise ArgumentError("CNN", "input_shape", f"must be [channels, height, width], got {list(input_shape)!r}")
        if pool not in self.POOLS:
            raise ArgumentError("CNN", "pool", f"must be one of {', '.join(self.POOLS)}, got {pool!r}")
        if not 0 <= dropout < 1:
            raise ArgumentError("CNN", "dropout", f"must be in [0, 1), got {dropout}")
        self.input_shape = tuple(input_shape)
        width, height, breadth = self.input_shape
        layers: list[nn.Module] = []
        for size in channels:
            step = (2 if height >= 2 * head_size else 1, 2 if breadth >= 2 * head_size else 1)
            for index in range(convs_per_block):
                stride = step if pool == "stride" and index == convs_per_block - 1 else (1, 1)
                layers += [nn.Conv2d(width, size, 3, stride=stride, padding=1, bias=False),
                           nn.BatchNorm2d(size), nn.ReLU(inplace=True)]
                width = size
            if step != (1, 1) and pool != "stride":
                layers.append(nn.MaxPool2d(step) if pool == "max" else nn.AvgPool2d(step))
            height, breadth = _halved(height, step[0], pool), _halved(breadth, step[1], pool)
        map_size = (min(height, head_size), min(breadth, head_size))
        layers.append(nn.AdaptiveAvgPool2d(map_size))  # a no-op on a map of that size already
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(width * map_size[0] * map_size[1], out_features))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x.reshape(x.shape[0], *self.input_shape)
        return self.head(self.features(x))


def _halved(side: int, step: int, pool: str) -> int:
    """A side after downsampling by ``step``: a strided 3x3 conv (padding 1) rounds up, pooling down."""
    return (side + step - 1) // step if pool == "stride" else side // step


def _check_sizes(owner: str, **sizes: int | Sequence[int]) -> None:
    """Every size (or every entry of a list of sizes) must be an int >= 1."""
    for argument, value in sizes.items():
        values = list(value) if isinstance(value, Sequence) else [value]
        empty = not values and argument != "hidden_sizes"  # an MLP may have no hidden layer
        if empty or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise ArgumentError(owner, argument, f"must hold ints >= 1, got {value!r}")
