"""The callback base class and the direction rule callbacks share."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from declarative_train.engine import Event, Subscription, TrainingContext
from declarative_train.errors import ArgumentError

log = logging.getLogger(__name__)


class Callback:
    """Subscribes handlers in :meth:`attach`; may carry state that checkpoints save.

    Handlers receive the executor as a :class:`~declarative_train.engine.TrainingContext`:
    what a callback may read (``state``, ``settings``, ``task``, ``optimizer``) and change
    (``request_stop``, ``log_metrics``, ``save_checkpoint``). Subscribe with :meth:`listen` so
    that :meth:`detach` can remove the subscriptions. A callback's state is checkpointed under its
    name in the config (``callbacks.<name>``); renaming it there starts it fresh, with a warning.
    Set ``runs_in_fast_dev_run = False`` on callbacks that ``fast_dev_run`` switches off.
    """

    runs_in_fast_dev_run: bool = True
    #: True once fit left the weights to test in the model (SWA): ``test("best")`` then tests them.
    tests_final_weights: bool = False

    def attach(self, context: TrainingContext) -> None:
        """Subscribe to ``context.events`` (through :meth:`listen`)."""

    def listen(self, context: TrainingContext, event: Event, handler: Callable[[TrainingContext], None], *,
               every: int = 1, once: int | None = None) -> Subscription[TrainingContext]:
        """``context.events.on(...)``, remembered so that :meth:`detach` removes it."""
        subscription = context.events.on(event, handler, every=every, once=once)
        self.__dict__.setdefault("_subscriptions", []).append(subscription)
        return subscription

    def detach(self) -> None:
        """Remove every subscription made through :meth:`listen`."""
        for subscription in self.__dict__.pop("_subscriptions", []):
            subscription.remove()

    def state_dict(self) -> dict[str, Any]:
        """State to keep in checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in direction ``mode``."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def check_mode(owner: str, mode: str | None) -> str | None:
    """``mode`` if it is ``min``, ``max`` or ``None`` (decided later); else a ``ValueError``."""
    if mode not in ("min", "max", None):
        raise ArgumentError(owner, "mode", f"must be 'min', 'max' or null (from the metric), got {mode!r}")
    return mode


def resolve_mode(owner: str, mode: str | None, monitor: str | None, context: TrainingContext) -> str:
    """``mode`` when given; else ``max`` or ``min`` from the monitored metric's ``higher_is_better``.

    A metric of unknown direction falls back to ``min`` (Lightning's default), with a warning.
    """
    if mode is not None:
        return mode
    if monitor is None:
        return "min"
    higher = context.higher_is_better(monitor)
    if higher is None:
        log.warning("%s: the direction of %r is unknown; using mode=min (set mode to choose)", owner, monitor)
        return "min"
    return "max" if higher else "min"
