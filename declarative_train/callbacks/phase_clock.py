"""Wall-clock time of fit's phases, each call counted without the phases nested in it, and its table."""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import attrs

from declarative_train.engine.phases import timed_items

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class PhaseStats:
    """One phase's timed calls: count, per-call mean/median/95th percentile and total, in seconds."""

    calls: int
    mean: float
    p50: float
    p95: float
    total: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> PhaseStats:
        """The statistics of ``samples`` (one own time per call)."""
        values = sorted(samples)
        n = len(values)
        if not n:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        total = math.fsum(values)

        def rank(q: float) -> float:  # nearest rank
            return values[max(0, math.ceil(q * n) - 1)]

        return cls(n, total / n, rank(0.5), rank(0.95), total)


@attrs.frozen
class PhaseReport:
    """What :meth:`PhaseClock.stop` measured: wall time, each phase, optimizer steps in between."""

    wall: float
    phases: Mapping[str, PhaseStats]
    steps: int

    @property
    def accounted(self) -> float:
        """The phases' total time (at most ``wall``)."""
        return math.fsum(stats.total for stats in self.phases.values())

    @property
    def rest(self) -> float:
        """Wall time in none of the phases: the loop's own lines, and the timing itself."""
        return self.wall - self.accounted

    def table(self, title: str) -> str:
        """A plain-text table: one row per phase, then the rest and the wall time."""
        wall = self.wall or float("nan")
        per_step = f", {1e3 * self.wall / self.steps:.3f} ms per optimizer step" if self.steps else ""
        lines = [f"{title}: {self.wall:.3f} s wall, {self.steps} optimizer steps{per_step}",
                 "Each phase's own time (phases nested in it left out); shares of the wall time.", "",
                 f"{'phase':<12}{'calls':>9}{'mean ms':>11}{'p50 ms':>11}{'p95 ms':>11}{'total s':>11}{'share':>9}"]
        for phase, s in sorted(self.phases.items(), key=lambda item: -item[1].total):
            lines.append(f"{phase:<12}{s.calls:>9}{1e3 * s.mean:>11.3f}{1e3 * s.p50:>11.3f}{1e3 * s.p95:>11.3f}"
                         f"{s.total:>11.3f}{s.total / wall:>9.1%}")
        lines.append(f"{'(rest)':<12}{'':>9}{'':>11}{'':>11}{'':>11}{self.rest:>11.3f}{self.rest / wall:>9.1%}")
        lines.append(f"{'wall':<12}{'':>9}{'':>11}{'':>11}{'':>11}{self.wall:>11.3f}{1:>9.1%}")
        return "\n".join(lines) + "\n"


class PhaseClock:
    """A :class:`~declarative_train.engine.PhaseTimer` that records each call's own time per phase.

    A call's own time leaves out the calls of other wrapped parts made inside it (a checkpoint
    saved by a callback is ``checkpoint`` time, not ``callbacks`` time), so between :meth:`start`
    and :meth:`stop` the phases' totals plus an unaccounted rest make the wall time exactly.
    Memory: 8 bytes per timed call.

    Args:
        synchronize: called at the end of every timed call before the clock is read (CUDA: wait
            for the device, so that time belongs to the phase that queued the work), or ``None``.
    """

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self._synchronize = synchronize
        self._samples: dict[str, array[float]] = {}
        # Calls in progress, outermost first: [start, own time of finished nested calls, phase].
        self._stack: list[list[Any]] = []
        self._started = time.perf_counter()

    def wrap(self, phase: str, fn: F) -> F:
        """``fn``, each call's own time recorded under ``phase``."""
        record = self._samples.setdefault(phase, array("d")).append
        stack, clock, synchronize = self._stack, time.perf_counter, self._synchronize

        def timed(*args: Any, **kwargs: Any) -> Any:
            frame: list[Any] = [clock(), 0.0, phase]
            stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                if synchronize is not None:
                    synchronize()
                elapsed = clock() - frame[0]
                stack.pop()
                if stack:
                    stack[-1][1] += elapsed
                record(elapsed - frame[1])

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed  # type: ignore[return-value]

    def iterate(self, phase: str, iterable: Iterable[T]) -> Iterator[T]:
        """The items of ``iterable``, the time of each ``next`` recorded under ``phase``."""
        return timed_items(self, phase, iterable)

    def start(self) -> None:
        """Forget what was recorded; the wall time starts now."""
        for samples in self._samples.values():
            del samples[:]
        self._started = time.perf_counter()

    def stop(self, steps: int = 0) -> PhaseReport:
        """The report from :meth:`start` until now (calls in progress counted up to now)."""
        if self._synchronize is not None:
            self._synchronize()
        now = time.perf_counter()
        own = {phase: list(samples) for phase, samples in self._samples.items()}
        inner = 0.0  # elapsed time of the open call inside the one at hand
        for start, nested, phase in reversed(self._stack):
            elapsed = now - max(start, self._started)
            own.setdefault(phase, []).append(elapsed - nested - inner)
            inner = elapsed
        return PhaseReport(now - self._started, {phase: PhaseStats.of(v) for phase, v in own.items() if v}, steps)
