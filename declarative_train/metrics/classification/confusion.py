"""Confusion matrix, Matthews correlation coefficient and Cohen's kappa."""

from __future__ import annotations

from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.classification._base import CountMetric, CountMetricOptions
from declarative_train.metrics.functional import confusion as F
from declarative_train.metrics.functional._checks import check_choice


class ConfusionMatrix(CountMetric):
    """Confusion matrix (rows: target, columns: prediction); ``normalize`` true|pred|all.

    Example:
        >>> import torch
        >>> cm = ConfusionMatrix(task="binary")
        >>> cm(torch.tensor([0.2, 0.8, 0.7, 0.1]), torch.tensor([0, 1, 0, 0]))
        tensor([[2, 1],
                [0, 1]])
    """

    supports_top_k = False
    higher_is_better = None

    @with_base_params(CountMetric.__init__)
    def __init__(
        self, task: str, normalize: str | None = None, **kwargs: Unpack[CountMetricOptions]
    ) -> None:
        check_choice(type(self).__name__, "normalize", normalize, F.NORMALIZE)
        super().__init__(task, **kwargs)
        self.normalize = normalize

    def _from_state(self, state: Tensor) -> Tensor:
        return F.normalize_confmat(state.clone(), self.normalize)


class MatthewsCorrCoef(CountMetric):
    """Matthews correlation coefficient.

    Example:
        >>> import torch
        >>> MatthewsCorrCoef(task="multiclass", num_classes=3)(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 1, 1, 2]))
        tensor(0.2000)
    """

    supports_top_k = False
    higher_is_better = True

    def _from_state(self, state: Tensor) -> Tensor:
        return F.mcc_from_state(self.args, state)


class CohenKappa(CountMetric):
    """Cohen's kappa; ``weights`` None, ``"linear"`` or ``"quadratic"``.

    Example:
        >>> import torch
        >>> CohenKappa(task="binary")(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
        tensor(0.5000)
    """

    supports_top_k = False
    higher_is_better = True

    @with_base_params(CountMetric.__init__)
    def __init__(
        self, task: str, weights: str | None = None, **kwargs: Unpack[CountMetricOptions]
    ) -> None:
        check_choice(type(self).__name__, "weights", weights, F.KAPPA_WEIGHTS)
        super().__init__(task, **kwargs)
        self.weights = weights

    def _from_state(self, state: Tensor) -> Tensor:
        return F.kappa_from_state(self.args, state, self.weights)
