"""A network the ONNX exporter cannot convert (``aten.cummax`` has no ONNX function)."""

from __future__ import annotations

import torch
from torch import nn


class CumMaxNet(nn.Module):
    """A linear layer, then the running maximum over the classes."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(self.linear(x), dim=1).values
