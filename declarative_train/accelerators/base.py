"""The accelerator protocol: what the executor asks of a device.

An accelerator owns the device, moving data onto it, the step boundary (a no-op except on XLA)
and the optimizer step. The executor calls these methods and never branches on the device kind.
Multi-process concerns (ranks, collectives, samplers) live in ``declarative_train.distributed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from declarative_train.utils.tree import move_to_device


class Accelerator:
    """Base accelerator: one device, plain ``optimizer.step()``, no step marking.

    Subclasses set ``name`` and override what differs on their device.
    """

    name: ClassVar[str] = "base"
    #: ``device_type`` for ``torch.autocast``.
    autocast_device_type: ClassVar[str] = "cpu"

    def __init__(self, device: torch.device) -> None:
        self.device = device

    # -- availability ---------------------------------------------------------------------
    @classmethod
    def is_available(cls) -> bool:
        """Whether this kind of device exists here."""
        return True

    @classmethod
    def missing_reason(cls) -> str:
        """What is missing and how to get it, for the validation error when unavailable."""
        return ""

    # -- set up -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Select the device and apply process-wide backend flags. Called once per process."""

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model to the device (before the optimizer is built)."""
        return model.to(self.device)

    def wrap_loader(self, loader: DataLoader) -> Iterable[Any]:
        """Return what the loop iterates for ``loader`` (XLA wraps it in a device loader)."""
        return loader

    @property
    def loader_moves_data(self) -> bool:
        """True when ``wrap_loader`` already puts batches on the device."""
        return False

    # -- hot path ---------------------------------------------------------------------------
    def to_device(self, batch: Any) -> Any:
        """Move a (nested) batch to the device."""
        return move_to_device(batch, self.device)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply one optimizer step (gradients are already reduced across processes)."""
        optimizer.step()

    def mark_step(self) -> None:
        """Mark the end of a training/eval step. A no-op except where graphs are traced (XLA)."""

    def checkpoint_state(self, state: Any) -> Any:
        """The checkpoint dict in a form ``torch.save`` writes portably (XLA: tensors on the CPU)."""
        return state

    def on_logging_step(self, step: int) -> None:
        """Called every ``log_every_n_steps`` optimizer steps for host-side checks (XLA: recompiles)."""

    # -- end of run -------------------------------------------------------------------------
    def num_compilations(self) -> int | None:
        """Number of graph compilations so far, where the device compiles graphs."""
        return None

    def describe(self) -> str:
        """One line for the log: which device runs the job."""
        return f"{self.name} ({self.device})"
