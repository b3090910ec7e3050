"""Classification metrics."""

from declarative_train.metrics.classification.confusion import (
    CohenKappa,
    ConfusionMatrix,
    MatthewsCorrCoef,
)
from declarative_train.metrics.classification.curves import (
    AUROC,
    ROC,
    AveragePrecision,
    PrecisionRecallCurve,
)
from declarative_train.metrics.classification.stat_scores import (
    Accuracy,
    Dice,
    F1Score,
    FBetaScore,
    HammingDistance,
    JaccardIndex,
    Precision,
    Recall,
    Specificity,
    StatScores,
)

__all__ = [
    "AUROC",
    "AveragePrecision",
    "CohenKappa",
    "ConfusionMatrix",
    "MatthewsCorrCoef",
    "PrecisionRecallCurve",
    "ROC",
    "Accuracy",
    "Dice",
    "F1Score",
    "FBetaScore",
    "HammingDistance",
    "JaccardIndex",
    "Precision",
    "Recall",
    "Specificity",
    "StatScores",
]
