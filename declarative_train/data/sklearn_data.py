"""sklearn's bundled datasets (no download): digits (classification), diabetes (regression)."""

from __future__ import annotations

from typing import Any

import torch

from declarative_train.data.module import TensorDataModule


class Digits(TensorDataModule):
    """8x8 handwritten digits: 1797 samples, 64 features, 10 classes.

    ``num_features``, ``num_classes`` and ``image_shape`` describe the data for model configs
    (``${data.num_classes}``); they are checked against the loaded data.
    """

    def __init__(
        self, *, num_features: int = 64, num_classes: int = 10, image_shape: list[int] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_features = num_features
        self.num_classes = num_classes
        self.image_shape = image_shape or [1, 8, 8]

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        features = torch.as_tensor(bunch.data, dtype=torch.float32)
        target = torch.as_tensor(bunch.target, dtype=torch.long)
        _check_shape(self, features.shape[1], int(target.max()) + 1)
        return features, target


class Diabetes(TensorDataModule):
    """Diabetes progression: 442 samples, 10 features, a standardised real-valued target."""

    def __init__(self, *, num_features: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_features = num_features

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_diabetes

        bunch = load_diabetes()
        features = torch.as_tensor(bunch.data, dtype=torch.float32)
        target = torch.as_tensor(bunch.target, dtype=torch.float32)
        _check_shape(self, features.shape[1], None)
        return features, (target - target.mean()) / target.std()


def _check_shape(module: Any, num_features: int, num_classes: int | None) -> None:
    if module.num_features != num_features:
        raise ValueError(f"{type(module).__name__}: data has {num_features} features, config says num_features={module.num_features}")
    if num_classes is not None and module.num_classes != num_classes:
        raise ValueError(f"{type(module).__name__}: data has {num_classes} classes, config says num_classes={module.num_classes}")
