"""The CPU accelerator."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from declarative_train.accelerators.base import Accelerator


class CPUAccelerator(Accelerator):
    """Runs on the host CPU. Batches from a DataLoader are already there, so nothing moves."""

    name: ClassVar[str] = "cpu"
    autocast_device_type: ClassVar[str] = "cpu"

    def __init__(self, device: torch.device | None = None) -> None:
        super().__init__(device or torch.device("cpu"))

    def to_device(self, batch: Any) -> Any:
        # DataLoader output is on the CPU already; walking the batch would only cost time.
        return batch
