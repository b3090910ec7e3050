"""Preemption: a signal saves ``last.ckpt`` at the next step boundary, then the run exits.

Schedulers announce the end of a job with a signal: SLURM sends SIGUSR1 (``--signal=USR1@90``)
or SIGTERM, Kubernetes and most batch systems SIGTERM, a terminal SIGINT (Ctrl-C). The handler
only records the signal; the executor carries on to its next checkpoint point (the end of the
current optimizer step and the validation that follows it), where :class:`PreemptionHandler`
writes ``last.ckpt`` and raises :class:`~declarative_train.errors.Preempted`. ``dtrain`` then
exits with 75 (``EX_TEMPFAIL``) for SIGTERM/SIGUSR1, so a scheduler can requeue the job
(``dtrain resume=auto`` continues it), or 130 for SIGINT. A second signal exits at once
(:class:`~declarative_train.errors.Interrupted`, exit code 128 + signal number), without saving.
In a sweep, either stops the whole sweep the way Ctrl-C does (``sweep.resume=true`` finishes it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from declarative_train.engine.events import Event
from declarative_train.engine.executor import Executor
from declarative_train.errors import Interrupted, Preempted

log = logging.getLogger(__name__)

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class PreemptionHandler:
    """Turns the first of ``signals`` into a save-and-stop at the executor's next checkpoint point.

    Python API::

        handler = PreemptionHandler(fallback_dir="ckpts")
        with handler.installed():
            handler.attach(executor)
            executor.fit()          # raises Preempted after saving last.ckpt

    ``last.ckpt`` goes where the executor's checkpoint callback keeps it
    (``Executor.checkpoint_callback``), else into ``fallback_dir``.
    """

    def __init__(self, fallback_dir: str | Path, signals: Sequence[int] = DEFAULT_SIGNALS) -> None:
        self.fallback_dir = Path(fallback_dir)
        self.signals = tuple(signals)
        self.received: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[PreemptionHandler]:
        """Handle the signals inside the block (main thread only; elsewhere this does nothing)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in self.signals}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def attach(self, executor: Executor) -> None:
        """Check for a received signal at every checkpoint point, after the callbacks saved."""
        check = functools.partial(self._stop_if_signalled, executor)
        executor.events.on(Event.STEP_CHECKPOINT, check)
        executor.events.on(Event.EPOCH_CHECKPOINT, check)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise Interrupted(signum)
        self.received = signum
        log.warning("%s received: saving last.ckpt at the next step boundary (send it again to exit now)",
                    signal.Signals(signum).name)

    def _stop_if_signalled(self, executor: Executor, _: object) -> None:
        if self.received is None:
            return
        saver = executor.checkpoint_callback
        if saver is not None:
            path = saver.write_last(executor)
        else:
            path = str(self.fallback_dir / "last.ckpt")
            executor.save_checkpoint(path)
        state = executor.state
        raise Preempted(self.received, path, state.epoch, state.global_step)
