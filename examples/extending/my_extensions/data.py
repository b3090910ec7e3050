"""A data module: two interleaving half circles ("moons"), generated, split train/val/test."""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from declarative_train.data import DataModule


class Moons(DataModule):
    """``num_samples`` 2-D points on two noisy half circles; class = which circle.

    ``num_features`` and ``num_classes`` are constructor arguments only so that the YAML file can
    state them for model configs to interpolate (``${data.num_features}``); they must be 2.
    Loader settings (``batch_size`` ...) go to :class:`DataModule`.
    """

    def __init__(self, *, num_samples: int = 1000, noise: float = 0.1, data_seed: int = 0,
                 val_fraction: float = 0.2, test_fraction: float = 0.2, batch_size: int = 32,
                 num_features: int = 2, num_classes: int = 2) -> None:
        super().__init__(batch_size=batch_size)
        if (num_features, num_classes) != (2, 2):
            raise ValueError(f"Moons: the data has 2 features and 2 classes, not {num_features} and {num_classes}")
        self.num_features, self.num_classes = num_features, num_classes
        self.num_samples = num_samples
        self.noise = noise
        self.data_seed = data_seed
        self.fractions = {"val": val_fraction, "test": test_fraction}

    def setup(self) -> None:
        """Generate the points once, then split them by ``data_seed``."""
        if self.datasets:
            return
        gen = torch.Generator().manual_seed(self.data_seed)
        target = torch.randint(2, (self.num_samples,), generator=gen)
        angle = torch.rand(self.num_samples, generator=gen) * math.pi
        upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
        points = torch.where(target[:, None] == 0, upper, lower)
        points = points + self.noise * torch.randn(points.shape, generator=gen)
        order = torch.randperm(self.num_samples, generator=gen)
        n_val, n_test = (int(self.num_samples * self.fractions[s]) for s in ("val", "test"))
        parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
        self.datasets = {split: TensorDataset(points[idx], target[idx]) for split, idx in parts.items()}
