"""ProgressBar: tqdm bars on a (fake) terminal, plain log lines otherwise; bars close on errors."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator

import pytest

from declarative_train import Executor
from declarative_train.callbacks import Callback, ProgressBar
from declarative_train.callbacks.progress_terminal import TerminalBars
from declarative_train.engine import Event, TrainingContext
from declarative_train.metrics import Accuracy


class FakeTerminal(io.StringIO):
    """What the bars write, as a terminal would receive it."""

    def isatty(self) -> bool:
        return True


class Raiser(Callback):
    """Logs a line at step 2 and raises at step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def attach(self, context: TrainingContext) -> None:
        self.listen(context, Event.STEP_END, lambda _: logging.getLogger("tests.progress").info("hello from step 2"),
                    once=2)
        self.listen(context, Event.STEP_END, self._raise, once=self.at)

    def _raise(self, context: TrainingContext) -> None:
        raise RuntimeError("boom")


@pytest.fixture
def console() -> Iterator[FakeTerminal]:
    """The fake terminal, also behind a console log handler on the root logger (as Hydra's)."""
    terminal = FakeTerminal()
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield terminal
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture(autouse=True)
def draw_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Draw at every refresh step and every evaluation however short (the tests' steps are fast)."""
    monkeypatch.setattr(TerminalBars, "redraw_interval_s", 0.0)
    monkeypatch.setattr(TerminalBars, "eval_delay_s", 0.0)


def _fit(make: Callable[..., Executor], bar: ProgressBar, *extra: Callback, **kwargs: object) -> Executor:
    callbacks = {"progress_bar": bar, **{f"extra{i}": cb for i, cb in enumerate(extra)}}
    ex = make(callbacks=callbacks, metrics={"acc": Accuracy(task="multiclass", num_classes=10)},
              **{"max_epochs": 2, "limit_train_batches": 5, "limit_val_batches": 3, **kwargs})
    ex.fit()
    return ex


def screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: carriage returns, newlines and cursor-up applied."""
    rows: dict[int, list[str]] = {}
    row = col = 0
    for part in re.split(r"(\r|\n|\x1b\[A)", text):
        if part == "\r":
            col = 0
        elif part == "\n":
            row, col = row + 1, 0
        elif part == "\x1b[A":
            row = max(row - 1, 0)
        elif part:
            line = rows.setdefault(row, [])
            line.extend(" " * (col + len(part) - len(line)))
            line[col:col + len(part)] = part
            col += len(part)
    return [s for s in ("".join(rows.get(r, [])).rstrip() for r in range(max(rows, default=-1) + 1)) if s]


def test_a_bar_per_epoch_on_a_terminal(make_executor: Callable[..., Executor], console: FakeTerminal) -> None:
    _fit(make_executor, ProgressBar(refresh_rate=1, stream=console))
    out = console.getvalue()
    epochs = [line for line in screen(out) if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 0", "epoch 1"]  # one bar left per epoch
    assert "100%" in epochs[-1] and "5/5" in epochs[-1] and "it/s" in epochs[-1]
    assert "loss=" in epochs[-1] and "val/acc=" in epochs[-1]
    assert out.count("\repoch 0:") > 3  # redrawn in place while the epoch runs
    assert "\rval:" in out  # the validation bar, cleared afterwards
    assert "epoch 0 done" not in out  # no plain log lines on a terminal


def test_short_epochs_draw_twice(make_executor: Callable[..., Executor], console: FakeTerminal,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TerminalBars, "redraw_interval_s", 0.1)
    monkeypatch.setattr(TerminalBars, "eval_delay_s", 0.5)
    _fit(make_executor, ProgressBar(refresh_rate=1, stream=console), max_epochs=1)
    out = console.getvalue()
    assert out.count("\repoch 0:") == 2  # opened and closed; the steps and the validation were too quick to show
    assert "val:" not in out and "val/acc=" in screen(out)[-1]


def test_refresh_rate_limits_redraws(make_executor: Callable[..., Executor], console: FakeTerminal) -> None:
    _fit(make_executor, ProgressBar(refresh_rate=2, stream=console), max_epochs=1, limit_val_batches=0)
    assert console.getvalue().count("\repoch 0:") == 2 + 2  # opened, steps 2 and 4, closed


def test_validation_bar_counts_batches(make_executor: Callable[..., Executor], console: FakeTerminal,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[tuple[int, int]] = []
    close_eval = TerminalBars.close_eval

    def spy(self: TerminalBars, context: TrainingContext) -> None:
        counted.append((self.eval_bar.n, self.eval_bar.total))
        close_eval(self, context)

    monkeypatch.setattr(TerminalBars, "close_eval", spy)
    ex = _fit(make_executor, ProgressBar(stream=console), max_epochs=1)
    assert counted == [(3, 3)]
    assert not ex.task._forward_hooks  # removed when the evaluation ended


def test_log_lines_print_above_the_bar(make_executor: Callable[..., Executor], console: FakeTerminal) -> None:
    _fit(make_executor, ProgressBar(refresh_rate=1, stream=console), Raiser(at=10_000), max_epochs=1)
    out = console.getvalue()
    before, after = out.split("hello from step 2\n")
    assert before.endswith("\r")  # the bar was cleared first
    assert after.startswith("\repoch 0:")  # and redrawn after the line
    assert "hello from step 2" in screen(out)


def test_bars_close_on_exceptions(make_executor: Callable[..., Executor], console: FakeTerminal) -> None:
    handler_streams = [getattr(h, "stream", None) for h in logging.getLogger().handlers]
    with pytest.raises(RuntimeError, match="boom"):
        _fit(make_executor, ProgressBar(refresh_rate=100, stream=console), Raiser(at=3))
    out = console.getvalue()
    assert out.endswith("\n")  # the traceback starts on a line of its own
    assert screen(out)[-1].startswith("epoch 0:") and "3/5" in screen(out)[-1]
    assert [getattr(h, "stream", None) for h in logging.getLogger().handlers] == handler_streams


def test_plain_lines_when_not_a_terminal(make_executor: Callable[..., Executor],
                                         caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="declarative_train.progress"):
        _fit(make_executor, ProgressBar(refresh_rate=1, stream=stream))
    assert stream.getvalue() == ""
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["epoch 0 done", "epoch 1 done"]
    assert "val/acc=" in caplog.records[-1].getMessage()
