"""Profilers: phase times that add up to fit's wall time, the untouched loop without one, torch traces, bad input."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig

from declarative_train import Classification, Event, Executor
from declarative_train.build import check_components
from declarative_train.callbacks import ModelCheckpoint, PyTorchProfiler, SimpleProfiler
from declarative_train.callbacks.phase_clock import PhaseClock
from declarative_train.distributed import SingleProcess
from declarative_train.engine import PHASES
from declarative_train.errors import ArgumentError, ConfigError
from declarative_train.models import MLP

#: Parts the profilers shadow while fit runs: (owner on the executor, attribute).
PARTS = [("_loop", "_batches"), ("_loop", "prepare"), ("_loop", "training_step"), ("precision", "backward"),
         ("_loop.optimization", "step"), ("_loop.optimization", "step_scheduler"), ("events", "fire"),
         ("_evaluator", "run"), ("distribution", "no_sync"), ("", "save_checkpoint"), ("", "wait_for_checkpoints"),
         ("", "flush_checkpoints")]


def _owner(ex: Executor, path: str) -> Any:
    obj: Any = ex
    for name in filter(None, path.split(".")):
        obj = getattr(obj, name)
    return obj


def _parts(ex: Executor) -> dict[str, Any]:
    """What each part is right now: the object's own attribute, or None when the class's method shows."""
    parts = {}
    for owner, name in PARTS:
        obj = _owner(ex, owner)
        parts[f"{owner}.{name}"] = vars(obj).get(name)
    return parts


def _profiled(make: Callable[..., Executor], tmp_path: Path, profiler: Any, **settings: Any) -> Executor:
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path / "checkpoints"), monitor="val/loss")
    return make(callbacks={"checkpoint": checkpoint, "profiler": profiler}, **settings)


def test_phase_times_add_up_to_the_measured_fit_time(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    profiler = SimpleProfiler(dirpath=str(tmp_path))
    # A model large enough that the loop's own lines (the unaccounted rest) are a small part of a step.
    task = Classification(MLP(64, [512, 512], 10), torch.nn.CrossEntropyLoss())
    epochs = 12  # about a second: writing profile.txt after the window is then a negligible part of it
    ex = _profiled(make_executor, tmp_path, profiler, task=task, batch_size=128, max_epochs=epochs)
    ex.setup()
    started = time.perf_counter()
    ex.fit()
    measured = time.perf_counter() - started

    report = profiler.report
    assert report is not None
    assert set(report.phases) == set(PHASES)
    assert report.rest >= 0 and report.wall <= measured
    assert abs(report.accounted - measured) <= 0.05 * measured, (report.accounted, measured, report.phases)
    steps = ex.state.global_step
    assert report.steps == steps == epochs * ex.state.num_train_batches
    phases = report.phases
    assert phases["forward"].calls == phases["backward"].calls == phases["optimizer"].calls == steps
    # Per epoch: the loader's iterator, each batch, and the fetch that ends the epoch.
    assert phases["data"].calls == steps + 2 * epochs
    assert phases["evaluation"].calls == epochs
    assert phases["checkpoint"].calls >= epochs  # a save per epoch, and the wait for the last background write
    for stats in phases.values():
        assert 0 <= stats.p50 <= stats.p95 and stats.mean * stats.calls == pytest.approx(stats.total)


def test_profile_txt_lists_every_phase_with_shares_that_make_the_wall_time(
        make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    ex = _profiled(make_executor, tmp_path, SimpleProfiler(dirpath=str(tmp_path)), max_epochs=2, limit_train_batches=5)
    ex.fit()
    text = (tmp_path / "profile.txt").read_text()
    assert text.startswith("Profile of fit: ") and "10 optimizer steps" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[4:]}
    assert set(rows) == {*PHASES, "(rest)", "wall"}
    shares = [float(row[-1].rstrip("%")) for name, row in rows.items() if name != "wall"]
    assert sum(shares) == pytest.approx(100.0, abs=0.1 * len(shares))
    assert rows["forward"][1] == "10"
    assert not list(tmp_path.glob(".profile.txt.*"))  # written atomically: no temporary left


def test_without_a_profiler_fit_runs_the_executors_own_parts(make_executor: Callable[..., Executor],
                                                              tmp_path: Path) -> None:
    plain = make_executor(max_epochs=1, limit_train_batches=2)
    plain.setup()
    before = _parts(plain)
    plain.fit()
    assert _parts(plain) == before, "without a profiler nothing is shadowed"

    during: dict[str, Any] = {}
    profiled = _profiled(make_executor, tmp_path, SimpleProfiler(dirpath=str(tmp_path)), max_epochs=1,
                         limit_train_batches=2)
    profiled.setup()
    original = _parts(profiled)
    profiled.events.on(Event.STEP_END, lambda ex: during.update(_parts(ex)))
    profiled.fit()
    assert all(during[key] is not original[key] for key in original), "every part is timed during fit"
    assert _parts(profiled) == original, "fit's end puts the executor's own parts back"


def test_timing_does_not_change_what_ddp_no_sync_gets(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    class Recording(SingleProcess):
        def __init__(self) -> None:
            self.steps: list[Any] = []

        def no_sync(self, model_step: Any) -> contextlib.AbstractContextManager[Any]:
            self.steps.append(model_step)
            return contextlib.nullcontext()

    distribution = Recording()
    ex = _profiled(make_executor, tmp_path, SimpleProfiler(dirpath=str(tmp_path)), distribution=distribution,
                   max_epochs=1, limit_train_batches=4, accumulate_grad_batches=2)
    ex.setup()
    step = ex._loop.training_step
    ex.fit()
    assert distribution.steps == [step, step]  # the micro-batches before each boundary, unwrapped


def test_nested_phases_count_their_own_time_once(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    clock = PhaseClock()

    def tick(seconds: float) -> None:
        now[0] += seconds

    save = clock.wrap("checkpoint", lambda: tick(2.0))

    def handler() -> None:
        tick(1.0)
        save()
        tick(0.5)

    fire = clock.wrap("callbacks", handler)
    clock.start()
    fire()
    tick(0.25)  # the loop's own lines
    report = clock.stop(steps=1)
    assert report.phases["callbacks"].total == pytest.approx(1.5)
    assert report.phases["checkpoint"].total == pytest.approx(2.0)
    assert report.wall == pytest.approx(3.75) and report.rest == pytest.approx(0.25)


def test_a_call_in_progress_at_stop_counts_up_to_then(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    clock = PhaseClock()
    reports = []

    def inner() -> None:
        now[0] += 1.0
        reports.append(clock.stop())

    outer = clock.wrap("callbacks", lambda: (now.__setitem__(0, now[0] + 2.0), clock.wrap("checkpoint", inner)()))
    clock.start()
    outer()
    (report,) = reports
    assert report.phases["callbacks"].total == pytest.approx(2.0)
    assert report.phases["checkpoint"].total == pytest.approx(1.0)
    assert report.rest == pytest.approx(0.0)


def test_data_phase_times_each_fetch() -> None:
    clock = PhaseClock()

    def batches() -> Iterator[int]:
        yield from range(3)

    assert list(clock.iterate("data", batches())) == [0, 1, 2]
    assert clock.stop().phases["data"].calls == 4  # three batches and the fetch that found none


def test_pytorch_profiler_writes_a_chrome_trace_and_the_top_operators(
        make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    profiler = PyTorchProfiler(dirpath=str(tmp_path), wait=1, warmup=1, active=2)
    ex = _profiled(make_executor, tmp_path, profiler, max_epochs=1, limit_train_batches=6)
    ex.fit()
    (trace_file,) = (tmp_path / "profiler").glob("rank0.*.pt.trace.json")
    trace = json.loads(trace_file.read_text())
    names = {event.get("name") for event in trace["traceEvents"]}
    assert {"phase:forward", "phase:backward", "phase:optimizer", "ProfilerStep#2"} <= names
    table = (tmp_path / "profile_ops.txt").read_text()
    assert re.search(r"Name\s+Self CPU %", table) and "aten::addmm" in table
    assert _parts(ex)["events.fire"] is None  # unwrapped after fit


@pytest.mark.parametrize(("argument", "value"), [("wait", -1), ("warmup", -2), ("active", 0), ("repeat", -1)])
def test_negative_schedule_numbers_are_refused(argument: str, value: int) -> None:
    with pytest.raises(ArgumentError, match=rf"PyTorchProfiler: {argument} must be >= "):
        PyTorchProfiler(**{argument: value})


def test_a_schedule_longer_than_the_run_is_refused_before_anything_is_written(
        make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    profiler = PyTorchProfiler(dirpath=str(tmp_path / "run"), wait=2, warmup=2, active=3)
    ex = make_executor(callbacks={"profiler": profiler}, max_epochs=1, limit_train_batches=6)
    with pytest.raises(ConfigError, match=r"profiler\.active: .*wait \+ warmup \+ active = 7 optimizer steps, more "
                                          r"than the run takes \(optimizer steps=6\)"):
        ex.fit()
    assert not (tmp_path / "run").exists()
    with pytest.raises(ArgumentError, match=r"active makes a cycle of .* = 7 .*max_steps=5"):
        PyTorchProfiler(wait=2, warmup=2, active=3, max_steps=5)


@pytest.mark.parametrize(("overrides", "path"), [
    (["profiler=pytorch", "trainer.max_steps=3"], r"profiler\.active: PyTorchProfiler: active makes a cycle"),
    (["profiler=pytorch", "profiler.repeat=-1"], r"profiler\.repeat: PyTorchProfiler: repeat must be >= 0"),
])
def test_bad_profiler_settings_name_their_key(compose_cfg: Callable[..., DictConfig], overrides: list[str],
                                              path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        check_components(compose_cfg(overrides))


def test_every_profiler_config_builds_as_the_last_callback(compose_cfg: Callable[..., DictConfig]) -> None:
    from declarative_train.build import build

    assert "profiler" not in build(compose_cfg(["trainer.max_epochs=1"])).callbacks
    for choice, cls in (("simple", SimpleProfiler), ("pytorch", PyTorchProfiler)):
        callbacks = build(compose_cfg([f"profiler={choice}"])).callbacks
        assert list(callbacks)[-1] == "profiler" and isinstance(callbacks["profiler"], cls)
