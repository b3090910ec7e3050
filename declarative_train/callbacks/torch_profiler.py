"""``torch.profiler`` over a few optimizer steps: Chrome traces and a top-operators table (``profiler=pytorch``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from torch.profiler import (
    ProfilerActivity,
    profile,
    record_function,
    schedule,
    tensorboard_trace_handler,
)

from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, Instrumentable, TrainingContext
from declarative_train.engine.batches import planned_steps
from declarative_train.engine.phases import timed_items
from declarative_train.errors import ArgumentError, ConfigError, ConfigIssue
from declarative_train.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class PyTorchProfiler(Callback):
    """Records operators with ``torch.profiler`` on a schedule of optimizer steps.

    From ``FIT_START``: ``wait`` steps unrecorded, ``warmup`` steps traced but discarded,
    ``active`` steps recorded; ``repeat`` such cycles (0: until fit ends). Each recorded cycle
    becomes a Chrome trace (``traceEvents``) in ``<dirpath>/profiler/`` written by
    ``tensorboard_trace_handler`` (``rank<N>.<time>.pt.trace.json``): open it in Perfetto
    (ui.perfetto.dev), ``chrome://tracing`` or TensorBoard's profile plugin. At ``FIT_END`` the
    last cycle's operators, sorted by their own device time on CUDA (else CPU time), go to
    ``<dirpath>/profile_ops.txt`` (rank N: ``profile_ops_rank<N>.txt``). Fit's phases
    (:mod:`declarative_train.engine.phases`) show in the trace as ``phase:<name>`` ranges.

    A cycle longer than the run (``wait + warmup + active`` beyond its optimizer steps) is a
    configuration error, found here from ``max_steps`` and at attach from the data.

    Args:
        dirpath: the run folder; traces go to its ``profiler/`` folder.
        wait / warmup / active / repeat: ``torch.profiler.schedule``'s arguments, in optimizer steps.
        record_shapes / profile_memory / with_stack: ``torch.profiler.profile``'s switches.
        row_limit: rows of the operators table.
        max_steps: the run's ``trainer.max_steps`` (-1: unbounded), to check the schedule early.
    """

    runs_in_fast_dev_run = False

    def __init__(self, dirpath: str = ".", wait: int = 1, warmup: int = 1, active: int = 3, repeat: int = 1,
                 record_shapes: bool = True, profile_memory: bool = False, with_stack: bool = False,
                 row_limit: int = 30, max_steps: int = -1) -> None:
        for argument, value, least in (("wait", wait, 0), ("warmup", warmup, 0), ("active", active, 1),
                                       ("repeat", repeat, 0), ("row_limit", row_limit, 1)):
            if value < least:
                raise ArgumentError("PyTorchProfiler", argument, f"must be >= {least}, got {value}")
        self.dirpath = Path(dirpath)
        self.wait, self.warmup, self.active, self.repeat = wait, warmup, active, repeat
        self.record_shapes, self.profile_memory, self.with_stack = record_shapes, profile_memory, with_stack
        self.row_limit = row_limit
        if max_steps >= 0:
            self._check_cycle(max_steps, "max_steps", lambda message: ArgumentError("PyTorchProfiler", "active", message))
        self._profile: profile | None = None
        self._averages: Any = None
        self._undo: Callable[[], None] | None = None

    def _check_cycle(self, steps: int, what: str, error: Callable[[str], Exception]) -> None:
        cycle = self.wait + self.warmup + self.active
        if cycle > steps:
            raise error(f"makes a cycle of wait + warmup + active = {cycle} optimizer steps, more than the run "
                        f"takes ({what}={steps}); lower them")

    def attach(self, context: TrainingContext) -> None:
        if not isinstance(context, Instrumentable):
            raise TypeError(f"PyTorchProfiler needs an executor that can be instrumented, got {type(context).__name__}")
        steps = planned_steps(context.state.num_train_batches, context.settings)
        if steps is not None:
            self._check_cycle(steps, "optimizer steps", lambda message: ConfigError([ConfigIssue("profiler.active", f"PyTorchProfiler: active {message}")]))
        self.listen(context, Event.FIT_START, self._start)
        self.listen(context, Event.STEP_END, self._step)
        self.listen(context, Event.FIT_END, self._finish)
        self.listen(context, Event.EXCEPTION, self._finish)

    def _start(self, context: TrainingContext) -> None:
        assert isinstance(context, Instrumentable)
        activities = [ProfilerActivity.CPU]
        if context.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        handler = tensorboard_trace_handler(str(self.dirpath / "profiler"), worker_name=f"rank{context.distribution.rank}")

        def trace_ready(prof: profile) -> None:
            handler(prof)
            self._averages = prof.key_averages()

        self._averages = None
        self._profile = profile(
            activities=activities, schedule=schedule(wait=self.wait, warmup=self.warmup, active=self.active,
                                                     repeat=self.repeat),
            on_trace_ready=trace_ready, record_shapes=self.record_shapes, profile_memory=self.profile_memory,
            with_stack=self.with_stack,
        )
        self._undo = context.instrument(_PhaseRanges())
        self._profile.start()

    def _step(self, context: TrainingContext) -> None:
        if self._profile is not None:
            self._profile.step()

    def _finish(self, context: TrainingContext) -> None:
        if self._profile is None:
            return
        prof, undo, self._profile, self._undo = self._profile, self._undo, None, None
        prof.stop()  # a cycle still recording is written now
        if undo is not None:
            undo()
        if self._averages is None:
            log.warning("PyTorchProfiler: fit ended before any step was recorded (wait=%d, warmup=%d)",
                        self.wait, self.warmup)
            return
        sort_by = "self_device_time_total" if context.device.type == "cuda" else "self_cpu_time_total"
        rank = context.distribution.rank
        path = self.dirpath / (f"profile_ops_rank{rank}.txt" if rank else "profile_ops.txt")
        table = self._averages.table(sort_by=sort_by, row_limit=self.row_limit)
        atomic_write_bytes(path, (table + "\n").encode())
        log.info("profiler: traces in %s, top operators in %s", self.dirpath / "profiler", path)


class _PhaseRanges:
    """A :class:`~declarative_train.engine.PhaseTimer` that marks each phase as a ``record_function`` range."""

    def wrap(self, phase: str, fn: F) -> F:
        name = f"phase:{phase}"

        def ranged(*args: Any, **kwargs: Any) -> Any:
            with record_function(name):
                return fn(*args, **kwargs)

        ranged.__wrapped__ = fn  # type: ignore[attr-defined]
        return ranged  # type: ignore[return-value]

    def iterate(self, phase: str, iterable: Iterable[T]) -> Iterator[T]:
        return timed_items(self, phase, iterable)
