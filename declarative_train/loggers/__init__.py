"""Loggers: sinks for scalars, text and hyperparameters (rank zero only)."""

from declarative_train.loggers.base import Logger
from declarative_train.loggers.csv_logger import CSVLogger
from declarative_train.loggers.mlflow_logger import MLflowLogger  # imports mlflow only in setup()
from declarative_train.loggers.tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "Logger", "MLflowLogger", "TensorBoardLogger"]
