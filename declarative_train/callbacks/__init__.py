"""Callbacks: subscribers to the executor's events. One class per file."""

from declarative_train.callbacks.base import Callback
from declarative_train.callbacks.early_stopping import EarlyStopping
from declarative_train.callbacks.ema import EMA
from declarative_train.callbacks.histograms import ParameterHistograms
from declarative_train.callbacks.lr_monitor import LearningRateMonitor
from declarative_train.callbacks.model_checkpoint import ModelCheckpoint
from declarative_train.callbacks.model_summary import ModelSummary
from declarative_train.callbacks.profiler import SimpleProfiler
from declarative_train.callbacks.progress import ProgressBar
from declarative_train.callbacks.swa import StochasticWeightAveraging
from declarative_train.callbacks.torch_profiler import PyTorchProfiler

__all__ = [
    "EMA", "Callback", "EarlyStopping", "LearningRateMonitor", "ModelCheckpoint", "ModelSummary",
    "ParameterHistograms", "ProgressBar", "PyTorchProfiler", "SimpleProfiler", "StochasticWeightAveraging",
]
