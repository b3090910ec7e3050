"""Stop training at a non-finite loss, without a host sync on every step.

Checking ``loss.isfinite()`` on the host each step would stall the device every step. Instead each
batch's loss stays on the device and the guard keeps a reference to it (no kernel, no copy); on
logging steps (``log_every_n_steps``), at the end of every epoch and before every checkpoint is
written, it checks all losses since its last check at once: one stacked ``isfinite``, one host
sync. So the error names the first bad batch and its optimizer step, and no checkpoint is ever
written after a non-finite loss: the last one on disk is good.

Under DDP every rank checks at the same points and the ranks agree by one all-reduce of their
counts of bad losses: a rank whose own losses were finite stops too, instead of waiting in the next
collective for a peer that has stopped (until the collective's timeout).

Under a GradScaler (``16-mixed``) a non-finite loss is routine: the scaler skips that optimizer
step and lowers its scale. The guard then only reports the skipped steps.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from declarative_train.engine.events import Event
from declarative_train.errors import NonFiniteLossError

log = logging.getLogger(__name__)


class LossGuard:
    """Watches the training loss of an executor; see the module docstring."""

    def __init__(self, check_every: int, scaler_skips_steps: bool) -> None:
        self.check_every = max(1, check_every)
        self.scaler_skips_steps = scaler_skips_steps
        self._pending: list[tuple[torch.Tensor, int, int, int]] = []

    def attach(self, executor: Any) -> None:
        """Subscribe before the callbacks, so an epoch's check runs before anything saves."""
        executor.events.on(Event.STEP_END, self.check, every=self.check_every)
        executor.events.on(Event.EPOCH_END, self.check)

    def record(self, loss: torch.Tensor, state: Any) -> None:
        """Keep the loss of the batch just run (number ``state.batch_idx`` of the epoch) for the next check."""
        self._pending.append((loss, state.global_step + 1, state.epoch, state.batch_idx))

    def check(self, executor: Any = None) -> None:
        """Raise :class:`NonFiniteLossError` if a loss since the last check was not finite (on any rank)."""
        pending, self._pending = self._pending, []
        bad = _non_finite(pending)
        distribution = getattr(executor, "distribution", None)
        if distribution is not None and distribution.world_size > 1 and not self.scaler_skips_steps:
            count = torch.tensor(len(bad), device=executor.accelerator.device)
            if int(distribution.reduce_sum(count)) and not bad:
                state = executor.state
                raise NonFiniteLossError(f"non-finite training loss on another rank by step {state.global_step} "
                                         f"(epoch {state.epoch}); training stopped on every rank")
        if not bad:
            return
        if self.scaler_skips_steps:
            log.warning("non-finite training loss at steps %s: the GradScaler skipped them",
                        sorted({step for _, step, _, _ in bad}))
            return
        loss, step, epoch, batch = bad[0]
        raise NonFiniteLossError(f"non-finite training loss ({float(loss)}) at step {step} (epoch {epoch}, "
                                 f"batch {batch}); training stopped and no checkpoint was written after it")


def _non_finite(pending: list[tuple[torch.Tensor, int, int, int]]) -> list[tuple[torch.Tensor, int, int, int]]:
    if not pending:
        return []
    values = torch.stack([loss.float().reshape(()) for loss, *_ in pending])
    finite = torch.isfinite(values).tolist()  # host sync: on checks only, never per step
    return [entry for entry, ok in zip(pending, finite) if not ok]
