"""Regression metrics (classes); the maths lives in :mod:`.functional.regression`."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import regression as F
from declarative_train.metrics.functional._checks import check_choice
from declarative_train.metrics.metric import Metric, MetricOptions


class _MomentOptions(MetricOptions, total=False):
    validate_args: bool


class _MeanError(Metric):
    total: Tensor
    count: Tensor
    kind = "se"
    higher_is_better = False

    @with_base_params(Metric.__init__)
    def __init__(self, validate_args: bool = True, **kwargs: Unpack[MetricOptions]) -> None:
        super().__init__(**kwargs)
        self.validate_args = validate_args
        self.add_state(
            "total", torch.tensor(0.0, dtype=torch.float64), reduce="sum", persistent=True
        )
        self.add_state("count", torch.tensor(0, dtype=torch.long), reduce="sum", persistent=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch of ``preds`` and ``target`` (same shape)."""
        self.total += F.error_sum_update(
            self.kind, preds, target, type(self).__name__, self.validate_args
        )
        self.count += preds.numel()

    def compute(self) -> Tensor:
        """The mean error over everything accumulated since the last reset."""
        return (self.total / self.count).float()


class MeanSquaredError(_MeanError):
    """Mean squared error.

    Example:
        >>> import torch
        >>> mse = MeanSquaredError()
        >>> mse.update(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
        >>> mse.compute()
        tensor(2.)
    """


class RootMeanSquaredError(_MeanError):
    """Root mean squared error.

    Example:
        >>> import torch
        >>> RootMeanSquaredError()(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
        tensor(1.4142)
    """

    def compute(self) -> Tensor:
        return (self.total / self.count).sqrt().float()


class MeanAbsoluteError(_MeanError):
    """Mean absolute error.

    Example:
        >>> import torch
        >>> MeanAbsoluteError()(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 2.0]))
        tensor(1.)
    """

    kind = "ae"


class MeanSquaredLogError(_MeanError):
    """Mean squared logarithmic error.

    Example:
        >>> import torch
        >>> MeanSquaredLogError()(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 1.0]))
        tensor(0.2402)
    """

    kind = "sle"


class MeanAbsolutePercentageError(_MeanError):
    """Mean absolute percentage error, as a fraction (like scikit-learn).

    Example:
        >>> import torch
        >>> MeanAbsolutePercentageError()(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]))
        tensor(0.5000)
    """

    kind = "ape"


class _Moments(Metric):
    moments: Tensor
    higher_is_better = True

    @with_base_params(Metric.__init__)
    def __init__(
        self, num_outputs: int = 1, validate_args: bool = True, **kwargs: Unpack[MetricOptions]
    ) -> None:
        super().__init__(**kwargs)
        if not (isinstance(num_outputs, int) and num_outputs >= 1):
            raise ValueError(
                f"{type(self).__name__}: argument `num_outputs` must be a positive int"
            )
        self.num_outputs = num_outputs
        self.validate_args = validate_args
        zeros = torch.zeros(6, num_outputs, dtype=torch.float64)
        self.add_state("moments", zeros, reduce="sum", persistent=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch of ``preds`` and ``target`` of shape (N,) or (N, num_outputs)."""
        m = F.moment_update(preds, target, type(self).__name__, self.validate_args)
        if self.validate_args and m.shape[1] != self.num_outputs:
            raise ValueError(
                f"{type(self).__name__}: argument `preds` has {m.shape[1]} outputs, "
                f"expected num_outputs={self.num_outputs}"
            )
        self.moments += m


class _WithMultioutput(_Moments):
    higher_is_better = True

    @with_base_params(_Moments.__init__)
    def __init__(
        self,
        num_outputs: int = 1,
        multioutput: str = "uniform_average",
        force_finite: bool = True,
        **kwargs: Unpack[_MomentOptions],
    ) -> None:
        check_choice(type(self).__name__, "multioutput", multioutput, F.MULTIOUTPUT)
        super().__init__(num_outputs, **kwargs)
        self.multioutput = multioutput
        self.force_finite = force_finite


class R2Score(_WithMultioutput):
    """Coefficient of determination R².

    Example:
        >>> import torch
        >>> r2 = R2Score()
        >>> r2.update(torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0]))
        >>> r2.compute()
        tensor(0.9486)
    """

    def compute(self) -> Tensor:
        return F.r2_from_moments(self.moments, self.multioutput, self.force_finite)


class ExplainedVariance(_WithMultioutput):
    """Explained variance score.

    Example:
        >>> import torch
        >>> ExplainedVariance()(torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0]))
        tensor(0.9572)
    """

    def compute(self) -> Tensor:
        return F.explained_variance_from_moments(self.moments, self.multioutput, self.force_finite)


class PearsonCorrCoef(_Moments):
    """Pearson correlation coefficient (per output when ``num_outputs > 1``).

    Example:
        >>> import torch
        >>> PearsonCorrCoef()(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.tensor([1.0, 2.0, 2.0, 4.0]))
        tensor(0.9695)
    """

    def compute(self) -> Tensor:
        return F.pearson_from_moments(self.moments)


class SpearmanCorrCoef(Metric):
    """Spearman rank correlation; keeps every sample (``cat`` states).

    Example:
        >>> import torch
        >>> SpearmanCorrCoef()(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.tensor([1.0, 2.0, 2.0, 4.0]))
        tensor(0.9487)
    """

    preds: list[Tensor]
    target: list[Tensor]
    higher_is_better = True

    @with_base_params(Metric.__init__)
    def __init__(
        self, num_outputs: int = 1, validate_args: bool = True, **kwargs: Unpack[MetricOptions]
    ) -> None:
        super().__init__(**kwargs)
        self.num_outputs = num_outputs
        self.validate_args = validate_args
        self.add_state("preds", [], reduce="cat")
        self.add_state("target", [], reduce="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Store one batch."""
        if self.validate_args:
            F.check_regression_inputs(type(self).__name__, preds, target)
        self.preds.append(preds.detach())
        self.target.append(target.detach())

    def compute(self) -> Tensor:
        if not self.preds:
            return torch.tensor(float("nan"))
        return F.spearman_from_data(torch.cat(self.preds), torch.cat(self.target))
