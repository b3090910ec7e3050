"""Functional metrics: ``metric(preds, target, ...) -> Tensor``; the metric classes call these.

The classification functions take ``preds, target, task`` and keyword options checked by
:class:`ClassificationArgs` (which documents them); :class:`ClassificationOptions`,
:class:`ConfusionOptions`, :class:`AreaOptions`, :class:`CurveOptions` and
:class:`TaskOptions` type them.
"""

from declarative_train.metrics.functional.args import (
    AreaOptions,
    ClassificationArgs,
    ClassificationOptions,
    ConfusionOptions,
    CurveOptions,
    TaskOptions,
)
from declarative_train.metrics.functional.confusion import (
    cohen_kappa,
    confusion_matrix,
    matthews_corrcoef,
)
from declarative_train.metrics.functional.curves import (
    auroc,
    average_precision,
    precision_recall_curve,
    roc,
)
from declarative_train.metrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from declarative_train.metrics.functional.regression import (
    explained_variance,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_log_error,
    pearson_corrcoef,
    r2_score,
    root_mean_squared_error,
    spearman_corrcoef,
)
from declarative_train.metrics.functional.stat_scores import (
    accuracy,
    dice,
    f1_score,
    fbeta_score,
    hamming_distance,
    jaccard_index,
    precision,
    recall,
    specificity,
    stat_scores,
)
from declarative_train.metrics.functional.text import perplexity

__all__ = [
    "AreaOptions",
    "ClassificationArgs",
    "ClassificationOptions",
    "ConfusionOptions",
    "CurveOptions",
    "TaskOptions",
    "accuracy",
    "auroc",
    "average_precision",
    "cohen_kappa",
    "confusion_matrix",
    "dice",
    "explained_variance",
    "f1_score",
    "fbeta_score",
    "hamming_distance",
    "jaccard_index",
    "matthews_corrcoef",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_log_error",
    "peak_signal_noise_ratio",
    "pearson_corrcoef",
    "perplexity",
    "precision",
    "precision_recall_curve",
    "r2_score",
    "recall",
    "roc",
    "root_mean_squared_error",
    "spearman_corrcoef",
    "specificity",
    "stat_scores",
    "structural_similarity_index_measure",
]
