"""Functional image metrics: PSNR and SSIM."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as nnf
from torch import Tensor

from declarative_train.metrics.functional._checks import check_regression_inputs, fail


def psnr_from_sums(
    sum_sq: Tensor, count: Tensor, data_range: Tensor | float, base: float = 10.0
) -> Tensor:
    """PSNR ``10 log10(range^2 / mse)`` (``base`` sets the logarithm) from summed squared errors."""
    mse = sum_sq / count
    rng = torch.as_tensor(data_range, dtype=torch.float64, device=mse.device)
    return (10 * (torch.log(rng * rng / mse) / math.log(base))).float()


def peak_signal_noise_ratio(
    preds: Tensor,
    target: Tensor,
    data_range: float | None = None,
    base: float = 10.0,
    validate_args: bool = True,
) -> Tensor:
    """Peak signal-to-noise ratio over all elements; ``data_range`` defaults to ``target.max() - target.min()``.

    Example:
        >>> import torch
        >>> peak_signal_noise_ratio(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 0.4, 1.0]))
        tensor(24.7712)
    """
    if validate_args:
        check_regression_inputs("peak_signal_noise_ratio", preds, target)
    p, t = preds.double(), target.double()
    rng = (t.max() - t.min()) if data_range is None else data_range
    return psnr_from_sums((p - t).square().sum(), torch.tensor(p.numel()), rng, base)


def _kernel(
    kernel_size: int, sigma: float, gaussian: bool, channels: int, device: torch.device
) -> Tensor:
    if gaussian:
        x = torch.arange(kernel_size, dtype=torch.float64, device=device) - (kernel_size - 1) / 2
        g = torch.exp(-(x * x) / (2 * sigma * sigma))
        g = g / g.sum()
    else:
        g = torch.full((kernel_size,), 1.0 / kernel_size, dtype=torch.float64, device=device)
    return torch.outer(g, g).expand(channels, 1, kernel_size, kernel_size).contiguous()


def check_ssim_inputs(name: str, preds: Tensor, target: Tensor, kernel_size: int) -> None:
    check_regression_inputs(name, preds, target)
    if preds.ndim != 4:
        raise fail(name, "preds", f"must have shape (N, C, H, W), got {tuple(preds.shape)}")
    if min(preds.shape[-2:]) < kernel_size:
        raise fail(
            name,
            "preds",
            f"images {tuple(preds.shape[-2:])} are smaller than kernel_size={kernel_size}",
        )


def ssim_per_image(
    preds: Tensor,
    target: Tensor,
    data_range: float | None = None,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    gaussian_kernel: bool = True,
) -> Tensor:
    """Mean SSIM of each image (N,), over the valid (unpadded) window positions and channels.

    ``data_range`` defaults to the value range of each target image.
    """
    x, y = preds.double(), target.double()
    if data_range is None:
        flat = y.flatten(1)
        rng = (flat.max(1).values - flat.min(1).values).view(-1, 1, 1, 1)
    else:
        rng = torch.full(
            (x.shape[0], 1, 1, 1), float(data_range), dtype=torch.float64, device=x.device
        )
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2
    w = _kernel(kernel_size, sigma, gaussian_kernel, x.shape[1], x.device)
    stack = torch.cat([x, y, x * x, y * y, x * y])
    out = nnf.conv2d(stack, w, groups=x.shape[1]).chunk(5)
    mx, my, exx, eyy, exy = out
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return ssim.flatten(1).mean(1)


def structural_similarity_index_measure(
    preds: Tensor,
    target: Tensor,
    data_range: float | None = None,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    gaussian_kernel: bool = True,
    validate_args: bool = True,
) -> Tensor:
    """Structural similarity (Wang et al. 2004), averaged over images; inputs (N, C, H, W).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> img = torch.rand(1, 1, 16, 16, generator=g)
        >>> structural_similarity_index_measure(img, img, data_range=1.0)
        tensor(1.)
    """
    if validate_args:
        check_ssim_inputs("structural_similarity_index_measure", preds, target, kernel_size)
    return (
        ssim_per_image(preds, target, data_range, kernel_size, sigma, k1, k2, gaussian_kernel)
        .mean()
        .float()
    )
