"""The executor's events and subscriptions with ``every``/``once`` filters (Ignite style).

Frequency belongs to the subscription: ``bus.on(Event.STEP_END, log_loss, every=50)``.
``every``/``once`` count optimizer steps for ``STEP_END``/``STEP_CHECKPOINT``, completed epochs
for ``EPOCH_END``/``EPOCH_CHECKPOINT``, and firings for the other events.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

Handler = Callable[[Any], None]


class Event(enum.Enum):
    """What the executor announces. Handlers receive the executor."""

    FIT_START = "fit_start"
    FIT_END = "fit_end"
    EPOCH_START = "epoch_start"
    EPOCH_END = "epoch_end"
    STEP_END = "step_end"  # after each optimizer step
    EVAL_START = "eval_start"  # validation or test; ``state.stage`` says which
    EVAL_END = "eval_end"
    EXCEPTION = "exception"
    # Safe points to save (as Composer's BATCH_CHECKPOINT): everything the step or epoch does,
    # validation and scheduler steps included, is done, so a checkpoint taken here resumes exactly.
    STEP_CHECKPOINT = "step_checkpoint"
    EPOCH_CHECKPOINT = "epoch_checkpoint"


@attrs.define
class _Subscription:
    handler: Handler
    every: int
    once: int | None
    fired: int = 0


class EventBus:
    """Handlers per event, called in subscription order."""

    def __init__(self) -> None:
        self._subscriptions: dict[Event, list[_Subscription]] = {event: [] for event in Event}

    def on(self, event: Event, handler: Handler, *, every: int = 1, once: int | None = None) -> None:
        """Call ``handler(executor)`` on ``event``, every N-th time, or only at the K-th time."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self._subscriptions[event].append(_Subscription(handler, every, once))

    def has_handlers(self, event: Event) -> bool:
        """Whether anything listens to ``event``."""
        return bool(self._subscriptions[event])

    def fire(self, event: Event, executor: Any) -> None:
        """Run the handlers of ``event`` whose filter passes."""
        subscriptions = self._subscriptions[event]
        if not subscriptions:
            return
        state = executor.state
        for sub in subscriptions:
            sub.fired += 1
            if event in (Event.STEP_END, Event.STEP_CHECKPOINT):
                count = state.global_step
            elif event in (Event.EPOCH_END, Event.EPOCH_CHECKPOINT):
                count = state.epoch + 1
            else:
                count = sub.fired
            if (sub.once is not None and count == sub.once) or (sub.once is None and count % sub.every == 0):
                sub.handler(executor)
