"""Accelerators: cpu, gpu (CUDA), tpu (torch-xla), and ``auto`` picking the best one present."""

from __future__ import annotations

import logging

import torch

from declarative_train.accelerators.base import Accelerator
from declarative_train.accelerators.cpu import CPUAccelerator
from declarative_train.accelerators.cuda import CUDAAccelerator

log = logging.getLogger(__name__)

__all__ = [
    "Accelerator",
    "CPUAccelerator",
    "CUDAAccelerator",
    "accelerator_class",
    "resolve_accelerator_name",
]


def _xla_class() -> type[Accelerator]:
    from declarative_train.accelerators.xla import XLAAccelerator

    return XLAAccelerator


def resolve_accelerator_name(name: str) -> str:
    """``auto`` becomes tpu, gpu, mps or cpu, whichever is present first; others pass through."""
    if name != "auto":
        return name
    if _xla_class().is_available():
        return "tpu"
    if torch.cuda.is_available():
        return "gpu"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def accelerator_class(name: str) -> type[Accelerator]:
    """The accelerator class for a config name (``auto`` resolved first)."""
    resolved = resolve_accelerator_name(name)
    if resolved == "tpu":
        return _xla_class()
    if resolved == "gpu":
        return CUDAAccelerator
    if resolved == "mps":
        return MPSAccelerator
    return CPUAccelerator


class MPSAccelerator(Accelerator):
    """Apple's Metal device (picked by ``auto`` on a Mac)."""

    name = "mps"
    autocast_device_type = "mps"

    def __init__(self, device: torch.device | None = None) -> None:
        super().__init__(device or torch.device("mps"))
