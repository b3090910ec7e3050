"""Argument checks shared by the metrics: each failure is a ``ValueError`` naming the metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def fail(name: str, arg: str, problem: str) -> ValueError:
    """Build the error raised for a bad argument ``arg`` of metric ``name``."""
    return ValueError(f"{name}: argument `{arg}` {problem}")


def check_choice(name: str, arg: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise fail(name, arg, f"must be one of {list(choices)}, got {value!r}")


def _dtype_checks(name: str, preds: Tensor, target: Tensor) -> None:
    if preds.is_complex():
        raise fail(name, "preds", f"has unsupported dtype {preds.dtype}")
    if target.is_floating_point() or target.is_complex():
        raise fail(name, "target", f"must be an integer tensor of labels, got dtype {target.dtype}")


def _shape_checks(name: str, task: str, preds: Tensor, target: Tensor, n: int | None) -> None:
    if task == "multiclass":
        if preds.shape == target.shape:
            if preds.is_floating_point():
                raise fail(name, "preds", "of the same shape as `target` must be integer labels")
            return
        if (
            preds.ndim != target.ndim + 1
            or preds.shape[0] != target.shape[0]
            or preds.shape[2:] != target.shape[1:]
        ):
            raise fail(
                name,
                "preds",
                f"must have shape (N, C, ...) for target (N, ...); got {tuple(preds.shape)} "
                f"and target {tuple(target.shape)}",
            )
        if not preds.is_floating_point():
            raise fail(name, "preds", "of shape (N, C, ...) must hold float scores")
        if preds.shape[1] != n:
            raise fail(
                name, "preds", f"has {preds.shape[1]} classes in dim 1, expected num_classes={n}"
            )
        return
    if preds.shape != target.shape:
        raise fail(
            name,
            "preds",
            f"shape {tuple(preds.shape)} differs from target shape {tuple(target.shape)}",
        )
    if task == "multilabel" and (preds.ndim < 2 or preds.shape[1] != n):
        raise fail(
            name, "preds", f"must have shape (N, num_labels={n}, ...), got {tuple(preds.shape)}"
        )


def check_inputs(
    name: str,
    task: str,
    preds: Tensor,
    target: Tensor,
    num_classes: int | None = None,
    num_labels: int | None = None,
    ignore_index: int | None = None,
) -> None:
    """Check shapes, dtypes, label ranges and NaNs of classification inputs (one host sync)."""
    if not isinstance(preds, Tensor) or not isinstance(target, Tensor):
        raise fail(name, "preds", "and `target` must be tensors")
    _dtype_checks(name, preds, target)
    _shape_checks(name, task, preds, target, num_classes if task == "multiclass" else num_labels)
    high = num_classes if task == "multiclass" and num_classes is not None else 2
    if target.numel() == 0:
        return
    if ignore_index is None:
        lo, hi = torch.aminmax(target)
        bad = (lo < 0) | (hi >= high)
    else:
        bad = (((target < 0) | (target >= high)) & (target != ignore_index)).any()
    if preds.is_floating_point():
        bad = bad | torch.isnan(preds).any()
    else:
        lo, hi = torch.aminmax(preds)
        bad = bad | (lo < 0) | (hi >= high)
    if bool(bad):
        ok_t = (target >= 0) & (target < high)
        if ignore_index is not None:
            ok_t = ok_t | (target == ignore_index)
        if not bool(ok_t.all()):
            raise fail(
                name,
                "target",
                f"has labels outside [0, {high - 1}]"
                + (f" (ignore_index={ignore_index})" if ignore_index is not None else ""),
            )
        if preds.is_floating_point():
            raise fail(name, "preds", "contains NaN")
        raise fail(name, "preds", f"has labels outside [0, {high - 1}]")


def check_regression_inputs(
    name: str, preds: Tensor, target: Tensor, nan_check: bool = True
) -> None:
    """Check that regression inputs are same-shape float tensors without NaN."""
    if not isinstance(preds, Tensor) or not isinstance(target, Tensor):
        raise fail(name, "preds", "and `target` must be tensors")
    if preds.shape != target.shape:
        raise fail(
            name,
            "preds",
            f"shape {tuple(preds.shape)} differs from target shape {tuple(target.shape)}",
        )
    for arg, t in (("preds", preds), ("target", target)):
        if not (
            t.is_floating_point()
            or t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
        ):
            raise fail(name, arg, f"must be a real tensor, got dtype {t.dtype}")
    if nan_check and bool(torch.isnan(preds).any() | torch.isnan(target).any()):
        raise fail(name, "preds" if bool(torch.isnan(preds).any()) else "target", "contains NaN")
