"""The loop's counters and the latest epoch-level metric values."""

from __future__ import annotations

from typing import Any

import attrs
import torch


@attrs.define
class LoopState:
    """Where the executor is. Callbacks read it; the executor alone writes the counters."""

    stage: str = "fit"
    """``fit``, ``val``, ``test`` or ``predict``."""
    epoch: int = 0
    """The current epoch, 0-based (after fit: the number of epochs finished; see :attr:`epochs_run`)."""
    global_step: int = 0
    """Optimizer steps taken."""
    batch_idx: int = 0
    """Batches consumed in the current training epoch."""
    epoch_finished: bool = False
    """The current epoch's end-of-epoch work (scheduler step, ``EPOCH_END``) is done."""
    epoch_loss_sum: torch.Tensor | None = None
    """Sum of this epoch's training losses so far, on the device."""
    loss: torch.Tensor | None = None
    """The last training loss, on the device (read it on logging steps only: ``.item()`` syncs)."""
    metrics: dict[str, float] = attrs.field(factory=dict)
    """Latest values: ``train/loss`` (epoch mean), ``val/*``, ``test/*``."""
    should_stop: bool = False
    """Set by callbacks to end fit after the current step."""
    stop_reason: str = ""
    num_train_batches: int = 0
    num_val_batches: int = 0

    @property
    def epochs_run(self) -> int:
        """Epochs entered so far, one cut short included (what ``results.json`` calls ``epochs``)."""
        return self.epoch + (1 if self.batch_idx > 0 else 0)

    def counters(self) -> dict[str, Any]:
        """The position a checkpoint stores."""
        return {"epoch": self.epoch, "global_step": self.global_step, "batch_idx": self.batch_idx,
                "epoch_finished": self.epoch_finished, "epoch_loss_sum": self.epoch_loss_sum}

    def load_counters(self, loop: dict[str, Any], device: torch.device) -> None:
        """Continue from a stored position: the next epoch when the stored one was finished."""
        self.epoch, self.global_step, self.batch_idx = loop["epoch"], loop["global_step"], loop["batch_idx"]
        running = loop.get("epoch_loss_sum")
        self.epoch_loss_sum = running.to(device, copy=True) if running is not None else None
        if loop.get("epoch_finished", False):
            self.epoch, self.batch_idx, self.epoch_loss_sum = self.epoch + 1, 0, None
        self.epoch_finished = False
