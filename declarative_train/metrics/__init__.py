"""Metrics for PyTorch, usable on their own or from the executor.

Stateful metric classes (``update`` / ``compute`` / ``reset``) that synchronise across processes
automatically, a :class:`MetricCollection`, a functional API in :mod:`.functional`, base classes
for custom metrics and a bridge to any ``sklearn.metrics`` function (imported lazily).

Every metric says whether larger values are better in ``higher_is_better`` (``None``: no
direction). The classification settings are checked once into a :class:`ClassificationArgs`.
"""

from declarative_train.metrics.base_classes import NumpyMetric, TensorMetric
from declarative_train.metrics.classification import (
    AUROC,
    ROC,
    Accuracy,
    AveragePrecision,
    CohenKappa,
    ConfusionMatrix,
    Dice,
    F1Score,
    FBetaScore,
    HammingDistance,
    JaccardIndex,
    MatthewsCorrCoef,
    Precision,
    PrecisionRecallCurve,
    Recall,
    Specificity,
    StatScores,
)
from declarative_train.metrics.collection import MetricCollection
from declarative_train.metrics.functional.args import ClassificationArgs, ClassificationOptions
from declarative_train.metrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from declarative_train.metrics.metric import Metric, MetricOptions
from declarative_train.metrics.regression import (
    ExplainedVariance,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogError,
    PearsonCorrCoef,
    R2Score,
    RootMeanSquaredError,
    SpearmanCorrCoef,
)
from declarative_train.metrics.sklearn_bridge import SklearnMetric
from declarative_train.metrics.sync import COUNTER as COLLECTIVE_COUNTER
from declarative_train.metrics.text import Perplexity

__all__ = [
    "AUROC",
    "Accuracy",
    "AveragePrecision",
    "COLLECTIVE_COUNTER",
    "ClassificationArgs",
    "ClassificationOptions",
    "CohenKappa",
    "ConfusionMatrix",
    "Dice",
    "ExplainedVariance",
    "F1Score",
    "FBetaScore",
    "HammingDistance",
    "JaccardIndex",
    "MatthewsCorrCoef",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogError",
    "Metric",
    "MetricCollection",
    "MetricOptions",
    "NumpyMetric",
    "PeakSignalNoiseRatio",
    "PearsonCorrCoef",
    "Perplexity",
    "Precision",
    "PrecisionRecallCurve",
    "R2Score",
    "ROC",
    "Recall",
    "RootMeanSquaredError",
    "SklearnMetric",
    "SpearmanCorrCoef",
    "Specificity",
    "StatScores",
    "StructuralSimilarityIndexMeasure",
    "TensorMetric",
]
