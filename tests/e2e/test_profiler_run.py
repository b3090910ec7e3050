"""``dtrain profiler=simple|pytorch``: profile.txt, a Chrome trace that parses, bad schedules as exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable

from declarative_train.engine import PHASES
from tests.conftest import QUICK, CLIResult


def test_simple_profiler_writes_profile_txt(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("profiler=simple", "trainer.max_epochs=2")
    assert result.returncode == 0, result.stderr
    (run_dir,) = result.run_dirs()
    text = (run_dir / "profile.txt").read_text()
    assert text.startswith("Profile of fit: ")
    steps = result.results()["global_step"]
    assert f"{steps} optimizer steps" in text
    rows = {line.split()[0] for line in text.splitlines()[4:]}
    assert rows == {*PHASES, "(rest)", "wall"}


def test_pytorch_profiler_writes_a_parseable_chrome_trace(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("profiler=pytorch", "profiler.active=2", *QUICK, "trainer.limit_train_batches=5")
    assert result.returncode == 0, result.stderr
    (run_dir,) = result.run_dirs()
    (trace_file,) = (run_dir / "profiler").glob("*.pt.trace.json")
    trace = json.loads(trace_file.read_text())
    assert any(event.get("name") == "phase:forward" for event in trace["traceEvents"])
    assert "Self CPU" in (run_dir / "profile_ops.txt").read_text()


def test_a_schedule_longer_than_the_run_is_exit_2_with_nothing_written(run_cli: Callable[..., CLIResult]) -> None:
    # 3 training batches, 1 epoch: the step count is known only once the data is loaded.
    result = run_cli("profiler=pytorch", "profiler.active=10", *QUICK)
    assert result.returncode == 2, result.stderr
    assert "profiler.active: PyTorchProfiler: active makes a cycle" in result.stderr
    assert "Traceback" not in result.stderr
    (run_dir,) = result.run_dirs()
    assert not (run_dir / "profiler").exists() and not (run_dir / "profile_ops.txt").exists()


def test_negative_schedule_numbers_are_exit_2(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("profiler=pytorch", "profiler.wait=-1")
    assert result.returncode == 2
    assert "profiler.wait: PyTorchProfiler: wait must be >= 0, got -1" in result.stderr
