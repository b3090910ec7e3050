"""Data modules: sklearn's bundled digits and diabetes (offline), and synthetic data."""

from declarative_train.data.module import DataModule, TensorDataModule
from declarative_train.data.sklearn_data import Diabetes, Digits
from declarative_train.data.synthetic import Synthetic

__all__ = ["DataModule", "Diabetes", "Digits", "Synthetic", "TensorDataModule"]
