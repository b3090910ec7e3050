"""Image metrics: peak signal-to-noise ratio and structural similarity."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import image as F
from declarative_train.metrics.functional._checks import check_regression_inputs
from declarative_train.metrics.metric import Metric, MetricOptions


class PeakSignalNoiseRatio(Metric):
    """PSNR over all accumulated pixels; ``data_range`` defaults to the range of all targets seen.

    Example:
        >>> import torch
        >>> psnr = PeakSignalNoiseRatio(data_range=1.0)
        >>> psnr.update(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 0.4, 1.0]))
        >>> psnr.compute()
        tensor(24.7712)
    """

    sum_sq: Tensor
    count: Tensor
    target_min: Tensor
    target_max: Tensor
    higher_is_better = True

    @with_base_params(Metric.__init__)
    def __init__(
        self,
        data_range: float | None = None,
        base: float = 10.0,
        validate_args: bool = True,
        **kwargs: Unpack[MetricOptions],
    ) -> None:
        super().__init__(**kwargs)
        self.data_range, self.base, self.validate_args = data_range, base, validate_args
        self.add_state(
            "sum_sq", torch.tensor(0.0, dtype=torch.float64), reduce="sum", persistent=True
        )
        self.add_state("count", torch.tensor(0, dtype=torch.long), reduce="sum", persistent=True)
        self.add_state(
            "target_min",
            torch.tensor(float("inf"), dtype=torch.float64),
            reduce="min",
            persistent=True,
        )
        self.add_state(
            "target_max",
            torch.tensor(float("-inf"), dtype=torch.float64),
            reduce="max",
            persistent=True,
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of images (any shape, same for preds and target)."""
        if self.validate_args:
            check_regression_inputs(type(self).__name__, preds, target)
        p, t = preds.double(), target.double()
        self.sum_sq += (p - t).square().sum()
        self.count += p.numel()
        if t.numel():
            self.target_min = torch.minimum(self.target_min, t.min())
            self.target_max = torch.maximum(self.target_max, t.max())

    def compute(self) -> Tensor:
        rng = self.target_max - self.target_min if self.data_range is None else self.data_range
        return F.psnr_from_sums(self.sum_sq, self.count, rng, self.base)


class StructuralSimilarityIndexMeasure(Metric):
    """Mean SSIM over all accumulated images (N, C, H, W).

    Example:
        >>> import torch
        >>> ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        >>> img = torch.linspace(0, 1, 256).reshape(1, 1, 16, 16)
        >>> ssim(img, img)
        tensor(1.)
    """

    total: Tensor
    count: Tensor
    higher_is_better = True

    @with_base_params(Metric.__init__)
    def __init__(
        self,
        data_range: float | None = None,
        kernel_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        gaussian_kernel: bool = True,
        validate_args: bool = True,
        **kwargs: Unpack[MetricOptions],
    ) -> None:
        super().__init__(**kwargs)
        self.data_range, self.kernel_size, self.sigma = data_range, kernel_size, sigma
        self.k1, self.k2, self.gaussian_kernel, self.validate_args = (
            k1,
            k2,
            gaussian_kernel,
            validate_args,
        )
        self.add_state(
            "total", torch.tensor(0.0, dtype=torch.float64), reduce="sum", persistent=True
        )
        self.add_state("count", torch.tensor(0, dtype=torch.long), reduce="sum", persistent=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of images."""
        if self.validate_args:
            F.check_ssim_inputs(type(self).__name__, preds, target, self.kernel_size)
        per_image = F.ssim_per_image(
            preds,
            target,
            self.data_range,
            self.kernel_size,
            self.sigma,
            self.k1,
            self.k2,
            self.gaussian_kernel,
        )
        self.total += per_image.sum()
        self.count += per_image.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count).float()
