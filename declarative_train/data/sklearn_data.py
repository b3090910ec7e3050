"""sklearn's bundled datasets (no download): digits (classification), diabetes (regression)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
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
        data, labels = load_digits_arrays()
        features = torch.as_tensor(data, dtype=torch.float32)
        target = torch.as_tensor(labels, dtype=torch.long)
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


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.datasets.load_digits()``'s data and target, read from the file sklearn ships.

    Importing sklearn takes longer (about 1.5 s, mostly scipy) than the rest of a default run's
    startup beyond torch; the file is found without importing it. Falls back to ``load_digits``
    where the file is not where sklearn keeps it.
    """
    path = _bundled_file("digits.csv.gz")
    if path is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)


def _bundled_file(name: str) -> Path | None:
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / name
    return path if path.is_file() else None


def _check_shape(module: Any, num_features: int, num_classes: int | None) -> None:
    if module.num_features != num_features:
        raise ValueError(f"{type(module).__name__}: data has {num_features} features, config says num_features={module.num_features}")
    if num_classes is not None and module.num_classes != num_classes:
        raise ValueError(f"{type(module).__name__}: data has {num_classes} classes, config says num_classes={module.num_classes}")
