"""The CUDA accelerator: device selection, backend flags, pinned-memory non-blocking copies."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from declarative_train.accelerators.base import Accelerator
from declarative_train.utils.tree import move_to_device


def parse_cuda_devices(devices: Any) -> list[int]:
    """Device indices for ``devices``: a count, ``-1``/``auto`` (all), or a list of indices.

    Raises ValueError naming what exists when more devices are asked for than are present.
    """
    available = torch.cuda.device_count()
    if devices in (-1, "auto"):
        indices = list(range(available))
    elif isinstance(devices, int):
        indices = list(range(devices))
    else:
        indices = [int(d) for d in devices]
    missing = [i for i in indices if i >= available]
    if not indices or missing:
        raise ValueError(f"asked for CUDA devices {devices!r} but this machine has {available}")
    return indices


class CUDAAccelerator(Accelerator):
    """One CUDA device per process. Copies are non-blocking (pair with ``pin_memory=True``)."""

    name: ClassVar[str] = "gpu"
    autocast_device_type: ClassVar[str] = "cuda"

    def __init__(self, device: torch.device | None = None, float32_matmul_precision: str | None = None) -> None:
        super().__init__(device or torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0))
        self.float32_matmul_precision = float32_matmul_precision

    @classmethod
    def is_available(cls) -> bool:
        return torch.cuda.is_available()

    @classmethod
    def missing_reason(cls) -> str:
        if torch.version.cuda is None:
            return (f"this torch build ({torch.__version__}) has no CUDA support; install a CUDA "
                    "build of torch (https://pytorch.org/get-started/locally/) on a machine with an NVIDIA GPU")
        return "torch was built with CUDA but no GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)"

    def setup(self) -> None:
        torch.cuda.set_device(self.device)
        if self.float32_matmul_precision:
            torch.set_float32_matmul_precision(self.float32_matmul_precision)

    def to_device(self, batch: Any) -> Any:
        return move_to_device(batch, self.device, non_blocking=True)

    def describe(self) -> str:
        return f"gpu ({self.device}: {torch.cuda.get_device_name(self.device)})"
