"""The executor's events and subscriptions with ``every``/``once`` filters (Ignite style).

Frequency belongs to the subscription: ``bus.on(Event.STEP_END, log_loss, every=50)``.
``every``/``once`` count optimizer steps for ``STEP_END``/``STEP_CHECKPOINT``, completed epochs
for ``EPOCH_END``/``EPOCH_CHECKPOINT``, and firings for the other events. ``on`` returns a
:class:`Subscription` whose ``remove()`` ends it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

C = TypeVar("C")


class Event(enum.Enum):
    """What the executor announces. Handlers receive the executor (a ``TrainingContext``)."""

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


_STEP_COUNTED = (Event.STEP_END, Event.STEP_CHECKPOINT)
_EPOCH_COUNTED = (Event.EPOCH_END, Event.EPOCH_CHECKPOINT)


@attrs.define(eq=False)
class Subscription(Generic[C]):
    """One handler on one event; :meth:`remove` unsubscribes it."""

    event: Event
    handler: Callable[[C], None]
    every: int
    once: int | None
    bus: EventBus[C]
    fired: int = 0

    def remove(self) -> None:
        """Stop calling the handler (removing twice does nothing)."""
        self.bus.remove(self)


class EventBus(Generic[C]):
    """Handlers per event, called in subscription order with the context ``C`` (the executor)."""

    def __init__(self) -> None:
        self._subscriptions: dict[Event, list[Subscription[C]]] = {event: [] for event in Event}

    def on(self, event: Event, handler: Callable[[C], None], *, every: int = 1, once: int | None = None) -> Subscription[C]:
        """Call ``handler(context)`` on ``event``, every N-th time, or only at the K-th time."""
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        subscription = Subscription(event, handler, every, once, self)
        self._subscriptions[event].append(subscription)
        return subscription

    def remove(self, subscription: Subscription[C]) -> None:
        """End ``subscription`` (see :meth:`Subscription.remove`)."""
        handlers = self._subscriptions[subscription.event]
        if subscription in handlers:
            handlers.remove(subscription)

    def has_handlers(self, event: Event) -> bool:
        """Whether anything listens to ``event``."""
        return bool(self._subscriptions[event])

    def fire(self, event: Event, context: Any) -> None:
        """Run the handlers of ``event`` whose filter passes."""
        subscriptions = self._subscriptions[event]
        if not subscriptions:
            return
        state = context.state
        for sub in tuple(subscriptions):  # a handler may unsubscribe itself
            sub.fired += 1
            if event in _STEP_COUNTED:
                count = state.global_step
            elif event in _EPOCH_COUNTED:
                count = state.epoch + 1
            else:
                count = sub.fired
            if (sub.once is not None and count == sub.once) or (sub.once is None and count % sub.every == 0):
                sub.handler(context)
