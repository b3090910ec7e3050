"""Loggers: sinks for scalars, text and hyperparameters (rank zero only)."""

from declarative_train.loggers.base import Logger
from declarative_train.loggers.csv_logger import CSVLogger
from declarative_train.loggers.tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "Logger", "TensorBoardLogger"]
