"""Signals in this very process: save at the next step boundary, then stop; twice: stop now."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from declarative_train import Event, Executor
from declarative_train.callbacks import ModelCheckpoint
from declarative_train.checkpoint import read
from declarative_train.cli import EXIT_PREEMPTED, exit_code
from declarative_train.engine.preemption import PreemptionHandler
from declarative_train.errors import Interrupted, Preempted


class SignalAt:
    """Sends ``signum`` to this process ``times`` times after optimizer step ``step``."""

    def __init__(self, step: int, signum: int, times: int = 1) -> None:
        self.step, self.signum, self.times = step, signum, times

    def attach(self, executor: Executor) -> None:
        executor.events.on(Event.STEP_END, self._send, once=self.step)

    def _send(self, executor: Executor) -> None:
        for _ in range(self.times):
            os.kill(os.getpid(), self.signum)


def _fit(make: Callable[..., Executor], tmp_path: Path, sender: SignalAt, **callbacks: object) -> PreemptionHandler:
    handler = PreemptionHandler(fallback_dir=tmp_path / "fallback")
    ex = make(max_epochs=2, callbacks={**callbacks, "sender": sender, "preemption": handler})
    with handler.installed():
        ex.fit()
    return handler


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, EXIT_PREEMPTED), (signal.SIGUSR1, EXIT_PREEMPTED),
                                         (signal.SIGINT, 130)])
def test_a_signal_saves_last_ckpt_at_the_next_step_boundary(
    make_executor: Callable[..., Executor], tmp_path: Path, signum: int, code: int
) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path / "ckpts"))
    with pytest.raises(Preempted) as info:
        _fit(make_executor, tmp_path, SignalAt(7, signum), model_checkpoint=saver)
    assert exit_code(info.value) == code
    assert info.value.ckpt_path == str(tmp_path / "ckpts" / "last.ckpt")
    assert read(info.value.ckpt_path)["loop"]["global_step"] == 7
    assert signal.getsignal(signum) is not PreemptionHandler._on_signal  # handlers restored


def test_without_a_model_checkpoint_last_ckpt_goes_to_the_fallback_folder(
    make_executor: Callable[..., Executor], tmp_path: Path
) -> None:
    with pytest.raises(Preempted):
        _fit(make_executor, tmp_path, SignalAt(3, signal.SIGTERM))
    assert read(str(tmp_path / "fallback" / "last.ckpt"))["loop"]["global_step"] == 3


def test_a_second_signal_stops_at_once_without_saving(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    with pytest.raises(Interrupted) as info:
        _fit(make_executor, tmp_path, SignalAt(3, signal.SIGTERM, times=2))
    assert exit_code(info.value) == 128 + signal.SIGTERM
    assert not (tmp_path / "fallback").exists()


def test_previous_handlers_come_back(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionHandler(tmp_path).installed() as handler:
        assert signal.getsignal(signal.SIGTERM) == handler._on_signal
    assert signal.getsignal(signal.SIGTERM) == before
