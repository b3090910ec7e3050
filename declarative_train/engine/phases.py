"""The phases of fit that profilers time, and which of the executor's parts make each one.

Nothing here runs unless a profiler asks: :func:`instrument_fit` shadows the parts with timed
wrappers (instance attributes over the methods) and returns the call that removes them, so a run
without a profiler has no extra code on its hot path.

=============  ===================================================================================
``data``       the next training batch from the loader (the wait for it), and starting an epoch's
               loader iterator
``to_device``  moving a training batch to the device (and input dtype conversion)
``forward``    the training step (under DDP: DDP's forward)
``backward``   the precision's backward (loss scaling under a GradScaler)
``optimizer``  clipping, the optimizer step, zeroing the gradients
``scheduler``  the learning-rate scheduler's step (or the check that it is not due)
``callbacks``  event handlers: callbacks, logging subscribers, the loss guard
``evaluation`` validation runs inside fit (their own data, steps and metrics)
``checkpoint`` the part of saving that runs on the loop: state snapshot (a synchronous write
               too), waits for background writes
=============  ===================================================================================

Phases nest (a checkpoint is saved by a callback, validation fires events); a profiler that
reports shares of wall time counts each phase's own time, without the phases inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

from declarative_train.engine.events import EventBus
from declarative_train.engine.loop import TrainingLoop

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Every phase :func:`instrument_fit` times, in the order of a training step.
PHASES = ("data", "to_device", "forward", "backward", "optimizer", "scheduler", "callbacks", "evaluation",
          "checkpoint")


class PhaseTimer(Protocol):
    """What a profiler gives :func:`instrument_fit`: wrappers that time a phase."""

    def wrap(self, phase: str, fn: F) -> F:
        """``fn``, timed as ``phase`` on every call."""

    def iterate(self, phase: str, iterable: Iterable[T]) -> Iterator[T]:
        """The items of ``iterable``, each ``next`` timed as ``phase``."""


@runtime_checkable
class Instrumentable(Protocol):
    """A context (the executor) whose fit a profiler can time by phase."""

    def instrument(self, timer: PhaseTimer) -> Callable[[], None]:
        """Time fit's parts with ``timer``; return the call that removes the timing."""


def timed_items(timer: PhaseTimer, phase: str, iterable: Iterable[T]) -> Iterator[T]:
    """The items of ``iterable``, each ``next`` timed as ``phase`` by ``timer.wrap`` (for ``iterate``)."""
    fetch = timer.wrap(phase, next)
    iterator = iter(iterable)
    done = object()
    while (item := fetch(iterator, done)) is not done:
        yield item  # type: ignore[misc]


def instrument_fit(timer: PhaseTimer, loop: TrainingLoop, events: EventBus[Any], checkpoints: Any) -> Callable[[], None]:
    """Shadow the parts of ``loop``, ``events`` and ``checkpoints`` (the executor) with ``timer``'s wrappers.

    Returns the call that puts the original parts back (once; later calls do nothing).
    """
    batches = timer.wrap("data", loop._batches)  # starts the epoch's loader iterator (workers, sampler)
    step, no_sync = loop.training_step, loop.distribution.no_sync
    optimization, evaluator, precision = loop.optimization, loop.evaluator, loop.precision
    parts: list[tuple[Any, str, Any]] = [
        (loop, "_batches", lambda loader, start: timer.iterate("data", batches(loader, start))),
        (loop, "prepare", timer.wrap("to_device", loop.prepare)),
        (loop, "training_step", timer.wrap("forward", step)),
        # DDP's no_sync needs the DDP module itself, not the timed wrapper the loop now passes.
        (loop.distribution, "no_sync", lambda _: no_sync(step)),
        (precision, "backward", timer.wrap("backward", precision.backward)),
        (optimization, "step", timer.wrap("optimizer", optimization.step)),
        (optimization, "step_scheduler", timer.wrap("scheduler", optimization.step_scheduler)),
        (events, "fire", timer.wrap("callbacks", events.fire)),
        (evaluator, "run", timer.wrap("evaluation", evaluator.run)),
        *((checkpoints, name, timer.wrap("checkpoint", getattr(checkpoints, name)))
          for name in ("save_checkpoint", "wait_for_checkpoints", "flush_checkpoints")),
    ]
    saved = [(obj, name, vars(obj).get(name, _ABSENT)) for obj, name, _ in parts]
    for obj, name, wrapped in parts:
        setattr(obj, name, wrapped)

    def restore() -> None:
        for obj, name, original in reversed(saved):
            if original is _ABSENT:
                vars(obj).pop(name, None)  # the class's method shows again
            else:
                setattr(obj, name, original)
        saved.clear()

    return restore


_ABSENT = object()
