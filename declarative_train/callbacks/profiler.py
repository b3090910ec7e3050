"""Where fit's time goes: each phase's calls and times in ``profile.txt`` (``profiler=simple``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from declarative_train.callbacks.base import Callback
from declarative_train.callbacks.phase_clock import PhaseClock, PhaseReport
from declarative_train.engine import Event, Instrumentable, TrainingContext
from declarative_train.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)


class SimpleProfiler(Callback):
    """Times fit by phase and writes a table of the phases at its end.

    The phases are those of :mod:`declarative_train.engine.phases`: ``data`` (waiting for the
    next batch), ``to_device``, ``forward``, ``backward``, ``optimizer``, ``scheduler``,
    ``callbacks`` (event handlers), ``evaluation`` (validation inside fit) and ``checkpoint``
    (the part of saving that runs on the loop). From ``FIT_START`` to ``FIT_END`` (the last
    background checkpoint write included) each call's own time is recorded; the table gives per
    phase the calls, mean, p50 and p95 per call, the total and its share of the wall time, and the
    unaccounted rest (the loop's own lines). :attr:`report` holds the numbers.

    The executor's parts are wrapped at ``FIT_START`` and unwrapped at ``FIT_END``: a run
    without a profiler runs no timing code. Every rank times itself; rank zero writes
    ``<dirpath>/<filename>``, rank N ``<stem>_rank<N><suffix>`` beside it (under DDP the slowest
    rank sets the pace, and its file shows why).

    Args:
        dirpath: the folder of the table (the run folder).
        filename: the table's file name.
        synchronize: on CUDA, wait for the device at the end of every phase, so that time belongs
            to the phase that queued the work (host and device then overlap less).
    """

    runs_in_fast_dev_run = False

    def __init__(self, dirpath: str = ".", filename: str = "profile.txt", synchronize: bool = True) -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.synchronize = synchronize
        self.report: PhaseReport | None = None
        self._clock: PhaseClock | None = None
        self._undo: Callable[[], None] | None = None
        self._first_step = 0

    def attach(self, context: TrainingContext) -> None:
        if not isinstance(context, Instrumentable):
            raise TypeError(f"SimpleProfiler needs an executor that can be instrumented, got {type(context).__name__}")
        device = context.device
        sync = (lambda: torch.cuda.synchronize(device)) if self.synchronize and device.type == "cuda" else None
        self._clock = PhaseClock(sync)
        self.listen(context, Event.FIT_START, self._start)
        self.listen(context, Event.FIT_END, self._finish)
        self.listen(context, Event.EXCEPTION, self._finish_failed)

    def _start(self, context: TrainingContext) -> None:
        assert self._clock is not None and isinstance(context, Instrumentable)
        self._undo = context.instrument(self._clock)
        self._first_step = context.state.global_step
        self._clock.start()

    def _finish(self, context: TrainingContext) -> None:
        context.wait_for_checkpoints()  # the last background write belongs to fit (timed as checkpoint)
        self._write(context, "Profile of fit")

    def _finish_failed(self, context: TrainingContext) -> None:
        if self._undo is not None:
            self._write(context, "Profile of fit (ended by an error)")

    def _write(self, context: TrainingContext, title: str) -> None:
        assert self._clock is not None and self._undo is not None
        self.report = self._clock.stop(context.state.global_step - self._first_step)
        self._undo()
        self._undo = None
        rank = context.distribution.rank
        path = self.dirpath / self.filename
        if rank:
            path = path.with_name(f"{path.stem}_rank{rank}{path.suffix}")
        world = context.distribution.world_size
        atomic_write_bytes(path, self.report.table(f"{title} (rank {rank} of {world})" if world > 1 else title).encode())
        log.info("profile of fit written to %s", path)
