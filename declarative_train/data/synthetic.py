"""Synthetic classification data: Gaussian clusters, sizes from config."""

from __future__ import annotations

from typing import Any

import torch

from declarative_train.data.module import TensorDataModule
from declarative_train.errors import ArgumentError


class Synthetic(TensorDataModule):
    """``num_samples`` points in ``num_classes`` Gaussian clusters of ``num_features`` dims.

    With ``image_shape`` set, ``num_features`` must equal its product (for CNNs).
    """

    def __init__(
        self, *, num_samples: int = 2048, num_features: int = 32, num_classes: int = 4,
        image_shape: list[int] | None = None, noise: float = 1.0, data_seed: int = 0, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for argument, value, least in (("num_samples", num_samples, 1), ("num_features", num_features, 1),
                                       ("num_classes", num_classes, 2)):
            if value < least:
                raise ArgumentError("Synthetic", argument, f"must be >= {least}, got {value}")
        if noise < 0:
            raise ArgumentError("Synthetic", "noise", f"must be >= 0, got {noise}")
        if image_shape is not None and num_features != int(torch.tensor(image_shape).prod()):
            raise ValueError(f"Synthetic: num_features={num_features} does not match image_shape={image_shape}")
        self.num_samples = num_samples
        self.num_features = num_features
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.noise = noise
        self.data_seed = data_seed

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.data_seed)
        centers = torch.randn(self.num_classes, self.num_features, generator=gen) * 3
        target = torch.randint(self.num_classes, (self.num_samples,), generator=gen)
        features = centers[target] + self.noise * torch.randn(self.num_samples, self.num_features, generator=gen)
        return features, target
