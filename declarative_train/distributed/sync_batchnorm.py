"""Batch norm whose batch statistics cover the samples of every process.

On CUDA this is :class:`torch.nn.SyncBatchNorm`. torch's version refuses CPU tensors, so on the
CPU (gloo) :class:`CPUSyncBatchNorm` computes the same thing with a differentiable all-reduce:
the global mean, then the global variance, one collective each; gradients flow back through both
(the gradient of a sum over ranks is the sum of the ranks' gradients).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the backward pass sums the incoming gradients likewise."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        out = grad.clone()
        dist.all_reduce(out, group=ctx.group)
        return out, None


def all_reduce_sum(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """``tensor`` summed over the ranks of ``group`` (default: all), with gradients."""
    return _AllReduceSum.apply(tensor, group)


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """:class:`torch.nn.SyncBatchNorm` for CPU tensors (any input rank >= 2, channels in dim 1).

    ``process_group`` should be a group of its own: gloo runs the collectives of one group on a
    pool of threads, and DDP's asynchronous gradient all-reduce in the same group as these
    blocking ones, issued from inside the backward pass, can leave the ranks waiting on each other.
    """

    process_group: Any = None

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        synced = self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not synced:
            return super().forward(input)
        dims = [d for d in range(input.dim()) if d != 1]
        count = torch.tensor([input.numel() / input.shape[1]], dtype=input.dtype)
        totals = all_reduce_sum(torch.cat([input.sum(dims), count]), self.process_group)
        n = totals[-1]
        mean = totals[:-1] / n
        shape = [1, -1] + [1] * (input.dim() - 2)
        centred = input - mean.view(shape)
        var = all_reduce_sum((centred * centred).sum(dims), self.process_group) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self._update_running_stats(mean.detach(), var.detach(), n.detach())
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None
        with torch.no_grad():
            assert self.num_batches_tracked is not None
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * n / (n - 1).clamp_min(1)
            self.running_mean.lerp_(mean, momentum)
            self.running_var.lerp_(unbiased, momentum)


def convert_sync_batchnorm(module: nn.Module, device_type: str, group: Any = None) -> nn.Module:
    """Replace every batch-norm layer of ``module`` by its synchronised version, in place.

    Parameters and buffers are shared with the old layers, so an optimizer built later (or
    earlier) sees the same tensors. Returns ``module`` (or the new layer if it is one itself).
    On the CPU the layers use ``group`` (see :class:`CPUSyncBatchNorm`).
    """
    if device_type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        return _copy(module, group)
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, device_type, group)
        if converted is not child:
            setattr(module, name, converted)
    return module


def _copy(old: nn.modules.batchnorm._BatchNorm, group: Any) -> CPUSyncBatchNorm:
    new = CPUSyncBatchNorm(old.num_features, old.eps, old.momentum, old.affine, old.track_running_stats)
    new.process_group = group
    if old.affine:
        new.weight, new.bias = old.weight, old.bias
    new.running_mean, new.running_var = old.running_mean, old.running_var
    new.num_batches_tracked = old.num_batches_tracked
    new.train(old.training)
    return new
