"""Classification metrics computed from confusion counts (accuracy, precision, F-scores ...)."""

from __future__ import annotations

from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.classification._base import CountMetric, CountMetricOptions
from declarative_train.metrics.functional.stat_scores import (
    accuracy_from_state,
    check_beta,
    fbeta_from_state,
    ratio_from_state,
    stat_scores_from_state,
)


class Accuracy(CountMetric):
    """Accuracy (see :func:`~declarative_train.metrics.functional.accuracy`).

    Example:
        >>> import torch
        >>> acc = Accuracy(task="multiclass", num_classes=3)
        >>> acc.update(torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7]]), torch.tensor([0, 1]))
        >>> acc.compute()
        tensor(0.5000)
    """

    higher_is_better = True

    def _from_state(self, state: Tensor) -> Tensor:
        return accuracy_from_state(self.args, state)


class HammingDistance(CountMetric):
    """Hamming distance, ``1 - accuracy``.

    Example:
        >>> import torch
        >>> m = HammingDistance(task="binary")
        >>> m(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 1, 1, 1]))
        tensor(0.2500)
    """

    higher_is_better = False

    def _from_state(self, state: Tensor) -> Tensor:
        return 1 - accuracy_from_state(self.args, state)


class _Ratio(CountMetric):
    kind = ""
    higher_is_better = True

    def _from_state(self, state: Tensor) -> Tensor:
        return ratio_from_state(self.kind, self.args, state)


class Precision(_Ratio):
    """Precision ``tp / (tp + fp)``.

    Example:
        >>> import torch
        >>> Precision(task="binary")(torch.tensor([0.2, 0.8, 0.7, 0.1]), torch.tensor([0, 1, 0, 0]))
        tensor(0.5000)
    """

    kind = "precision"


class Recall(_Ratio):
    """Recall ``tp / (tp + fn)``.

    Example:
        >>> import torch
        >>> Recall(task="multiclass", num_classes=3, average="macro")(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 1]))
        tensor(0.5000)
    """

    kind = "recall"


class Specificity(_Ratio):
    """Specificity ``tn / (tn + fp)``.

    Example:
        >>> import torch
        >>> Specificity(task="binary")(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
        tensor(0.6667)
    """

    kind = "specificity"


class JaccardIndex(_Ratio):
    """Jaccard index (intersection over union) ``tp / (tp + fp + fn)``; default ``average="macro"``.

    Example:
        >>> import torch
        >>> JaccardIndex(task="multiclass", num_classes=3)(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 2]))
        tensor(0.4444)
    """

    kind = "jaccard"
    default_average = "macro"


class Dice(_Ratio):
    """Dice coefficient ``2 tp / (2 tp + fp + fn)``.

    Example:
        >>> import torch
        >>> Dice(task="binary")(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
        tensor(0.6667)
    """

    kind = "dice"


class FBetaScore(CountMetric):
    """F-beta score ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``.

    Example:
        >>> import torch
        >>> FBetaScore(task="binary", beta=0.5)(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
        tensor(0.5556)
    """

    higher_is_better = True

    @with_base_params(CountMetric.__init__)
    def __init__(self, task: str, beta: float = 1.0, **kwargs: Unpack[CountMetricOptions]) -> None:
        check_beta(type(self).__name__, beta)
        super().__init__(task, **kwargs)
        self.beta = float(beta)

    def _from_state(self, state: Tensor) -> Tensor:
        return fbeta_from_state(self.args, state, self.beta)


class F1Score(FBetaScore):
    """F1 score (F-beta with beta = 1).

    Example:
        >>> import torch
        >>> f1 = F1Score(task="multiclass", num_classes=3, average="macro")
        >>> f1(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 2]))
        tensor(0.5000)
    """

    higher_is_better = True

    @with_base_params(CountMetric.__init__)
    def __init__(self, task: str, **kwargs: Unpack[CountMetricOptions]) -> None:
        super().__init__(task, beta=1.0, **kwargs)


class StatScores(CountMetric):
    """``[tp, fp, tn, fn, support]``: summed (micro), per class (none) or averaged.

    Example:
        >>> import torch
        >>> StatScores(task="binary")(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
        tensor([1, 1, 2, 0, 1])
    """

    higher_is_better = None

    def _from_state(self, state: Tensor) -> Tensor:
        return stat_scores_from_state(self.args, state)
