"""What ``profiler=simple`` costs: the default experiment's fit with and without it, in one process.

Each round builds the default config (``dtrain``'s own compose, validation and build) twice,
``profiler=none`` and ``profiler=simple`` in a shuffled order, and times ``executor.fit()`` after
``setup()`` (data loaded, model built). A round's figure is the profiled fit's time per optimizer
step over the plain one's; the report is the median and the spread over the rounds, plus the
profiler's own view of one run (its unaccounted rest).

On a shared machine whole fits vary by more than the profiler costs, so the bench also times the
timing itself: a wrapped no-op call against a plain one, and a timed ``next`` against a plain one
(best of several repeats), times the wrapped calls the profiled run made per optimizer step.

Usage: ``OMP_NUM_THREADS=1 python bench/bench_profiler.py [--rounds 7] [--epochs 20]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from declarative_train.build import build, seed_everything
from declarative_train.cli import _register, config_dir
from declarative_train.config.validate import validate_config


def fit_time_per_step(profiler: str, epochs: int, out: Path) -> tuple[float, object]:
    """Seconds per optimizer step of the default experiment's fit with ``profiler=<profiler>``."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[f"profiler={profiler}", f"trainer.max_epochs={epochs}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    validate_config(cfg)
    seed_everything(cfg.seed)
    executor = build(cfg).executor()
    executor.setup()
    started = time.perf_counter()
    executor.fit()
    elapsed = time.perf_counter() - started
    for logger in executor.loggers:
        logger.finalize()
    return elapsed / executor.state.global_step, executor.callbacks.get("profiler")


def timing_cost_per_call(repeats: int = 7, calls: int = 200_000) -> tuple[float, float]:
    """Seconds a wrapped call and a timed ``next`` add over plain ones (best of ``repeats``)."""
    from declarative_train.callbacks.phase_clock import PhaseClock

    def noop() -> None:
        return None

    clock = PhaseClock()
    wrapped = clock.wrap("callbacks", noop)

    def best(fn: object) -> float:
        def once() -> float:
            started = time.perf_counter()
            for _ in range(calls):
                fn()  # type: ignore[operator]
            return (time.perf_counter() - started) / calls
        return min(once() for _ in range(repeats))

    def iterate(timed: bool) -> float:
        def once() -> float:
            items = range(calls)
            started = time.perf_counter()
            for _ in clock.iterate("data", items) if timed else iter(items):
                pass
            return (time.perf_counter() - started) / calls
        return min(once() for _ in range(repeats))

    return best(wrapped) - best(noop), iterate(True) - iterate(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    _register()
    ratios, plain_steps, profiled_report = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        fit_time_per_step("none", 1, Path(tmp) / "warmup")
        for round_index in range(args.rounds):
            order = ["none", "simple"]
            random.shuffle(order)
            times = {}
            for profiler in order:
                times[profiler], callback = fit_time_per_step(profiler, args.epochs, Path(tmp) / f"{round_index}-{profiler}")
                if callback is not None:
                    profiled_report = callback.report  # type: ignore[attr-defined]
            ratios.append(times["simple"] / times["none"])
            plain_steps.append(times["none"])
            print(f"round {round_index}: none {1e3 * times['none']:.3f} ms/step, simple {1e3 * times['simple']:.3f} "
                  f"ms/step, ratio {ratios[-1]:.4f}")
    print(f"\nplain step {1e3 * statistics.median(plain_steps):.3f} ms; profiled/plain: median "
          f"{statistics.median(ratios):.4f}, min {min(ratios):.4f}, max {max(ratios):.4f} over {args.rounds} rounds")
    if profiled_report is not None:
        report = profiled_report
        print(f"last profiled run: wall {report.wall:.3f} s, unaccounted rest {report.rest / report.wall:.1%}")
        per_call, per_fetch = timing_cost_per_call()
        fetches = report.phases["data"].calls  # type: ignore[attr-defined]
        calls = sum(stats.calls for stats in report.phases.values()) - fetches  # type: ignore[attr-defined]
        cost = (calls * per_call + fetches * per_fetch) / report.steps  # type: ignore[attr-defined]
        step = statistics.median(plain_steps)
        print(f"timing cost: {1e6 * per_call:.2f} us a wrapped call, {1e6 * per_fetch:.2f} us a timed fetch; "
              f"{calls / report.steps:.1f} calls + {fetches / report.steps:.1f} fetches per step "  # type: ignore[attr-defined]
              f"= {1e6 * cost:.1f} us per step = {cost / step:.2%} of a {1e3 * step:.3f} ms step")


if __name__ == "__main__":
    main()
