"""Benchmark the sweep machinery of ``dtrain -m``.

Run: ``python bench/bench_sweep.py`` (a few minutes on 2 cores). Prints one table:

* launching a 100-job grid: expanding it and composing every job's config in process (what
  Hydra's basic launcher does per job, plus our validation), and a whole 100-job sweep of no-op
  jobs (``train=false test=false``) end to end, without and with the TensorBoard logger;
* the sweep machinery's per-job cost (job preparation, run name, hparams, the summary) next to
  the run time of a short job, and 4 short jobs as one sweep vs ``dtrain`` run 4 times;
* 4 jobs (short, and the default 20 epochs) with the joblib launcher (2 workers) vs Hydra's
  basic (sequential) launcher.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from declarative_train.cli import _register, config_dir  # noqa: E402
from declarative_train.config.validate import validate_config  # noqa: E402
from declarative_train.jobs.hparams import overrides_to_hparams  # noqa: E402
from declarative_train.sweep.job import prepare_job  # noqa: E402
from declarative_train.sweep.naming import job_overrides, run_name  # noqa: E402
from declarative_train.sweep.summary import summarize  # noqa: E402

GRID = ["seed=range(0,10)", "trainer.max_epochs=range(1,11)"]  # 10 x 10 = 100 jobs
SHORT = ["trainer.max_epochs=3", "logger=none"]  # a short real job (digits MLP, 3 epochs)
LONGER = ["trainer.max_epochs=20", "logger=none"]  # the default job's length
ROWS: list[tuple[str, str, str]] = []
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
ENV.pop("HYDRA_FULL_ERROR", None)


def row(what: str, value: str, note: str = "") -> None:
    ROWS.append((what, value, note))
    print(f"  {what}: {value} {note}", file=sys.stderr, flush=True)


def dtrain(args: list[str], cwd: Path) -> float:
    """Wall seconds of one ``dtrain`` process (must succeed)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "declarative_train", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"dtrain {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def best_of(fn: Callable[[], object], repeat: int = 3, number: int = 1) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - started) / number)
    return min(times)


def bench_compose() -> None:
    _register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        started = time.perf_counter()
        (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(GRID), None)
        expand = time.perf_counter() - started
        started = time.perf_counter()
        configs = [compose("train", overrides=job) for job in jobs]
        composed = time.perf_counter() - started
        for cfg in configs:
            with open_dict(cfg):
                cfg.paths.output_dir = "/tmp/unused"
        started = time.perf_counter()
        for cfg in configs:
            validate_config(cfg)
        validated = time.perf_counter() - started
    GlobalHydra.instance().clear()
    row("100-job grid: expand overrides", f"{expand * 1e3:.1f} ms")
    row("100-job grid: compose every job config", f"{composed:.2f} s", f"({composed * 10:.1f} ms/job)")
    row("100-job grid: validate every job config", f"{validated:.2f} s", f"({validated * 10:.1f} ms/job)")


def bench_launch(work: Path) -> Path:
    noop = ["-m", *GRID, "train=false", "test=false"]
    wall = dtrain([*noop, "logger=none", "hydra.sweep.dir=noop"], work)
    row("100 no-op jobs, dtrain -m end to end", f"{wall:.1f} s", f"({wall * 10:.0f} ms/job, summary included)")
    wall_tb = dtrain([*noop, "hydra.sweep.dir=noop_tb"], work)
    row("100 no-op jobs + TensorBoard (name, config, hparams)", f"{wall_tb:.1f} s", f"(+{(wall_tb - wall) * 10:.0f} ms/job)")
    return work / "noop_tb"


def bench_machinery(work: Path, sweep: Path) -> None:
    summary_s = best_of(lambda: summarize(sweep).write())
    row("summary of 100 jobs (read + write csv/md)", f"{summary_s * 1e3:.0f} ms", f"({summary_s * 10:.2f} ms/job)")
    overrides = ["seed=3", "trainer.max_epochs=7"]
    naming_us = best_of(lambda: (run_name(overrides), overrides_to_hparams(overrides)), number=2000) * 1e6
    row("run name + hparams from overrides", f"{naming_us:.1f} us/job")
    _register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["sweep.resume=true"])
        hydra_cfg = compose("train", overrides=["hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}", *overrides],
                            return_hydra_config=True)
    GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(hydra_cfg)
    resolver_us = best_of(job_overrides, number=200) * 1e6
    row("sweep.job_overrides resolver (the job's swept overrides)", f"{resolver_us:.0f} us/call")
    job_dir = sweep / "3"
    with open_dict(cfg):
        cfg.paths.output_dir = str(job_dir)
    prepare_us = best_of(lambda: prepare_job(cfg, sweep), number=200) * 1e6
    row("prepare_job (resume check of a finished job)", f"{prepare_us:.0f} us/job")

    one_sweep = dtrain(["-m", "seed=1,2,3,4", *SHORT, "hydra.sweep.dir=short"], work)
    job_s = statistics.mean(json.loads((work / "short" / str(i) / "results.json").read_text())["wall_time_s"]
                            for i in range(4))
    one_by_one = sum(dtrain([f"seed={s}", *SHORT, f"hydra.run.dir=one/{s}"], work) for s in (1, 2, 3, 4))
    row("short job (digits MLP, 3 epochs): run time inside the job", f"{job_s:.2f} s")
    machinery_ms = summary_s * 10 + (naming_us + prepare_us + 4 * resolver_us) / 1e3  # ~4 resolutions per job
    row("sweep machinery per job / short job", f"{machinery_ms:.2f} ms / {job_s * 1e3:.0f} ms",
        f"= {machinery_ms / (job_s * 1e3) * 100:.2f} %")
    row("4 short jobs: one dtrain -m vs dtrain x4", f"{one_sweep:.1f} s vs {one_by_one:.1f} s",
        f"(x{one_by_one / one_sweep:.2f}: process start and imports paid once)")


def bench_launchers(work: Path) -> None:
    for label, job in (("short", SHORT), ("20-epoch", LONGER)):
        basic = dtrain(["-m", "seed=1,2,3,4", *job, f"hydra.sweep.dir=basic_{label}"], work)
        parallel = dtrain(["-m", "hydra/launcher=parallel", "seed=1,2,3,4", *job, f"hydra.sweep.dir=joblib_{label}"], work)
        row(f"4 {label} jobs: joblib n_jobs=2 vs basic launcher", f"{parallel:.1f} s vs {basic:.1f} s",
            f"(speed-up x{basic / parallel:.2f}; {os.cpu_count()} cores)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        work = Path(tmp)
        print("running (progress on stderr)...", file=sys.stderr)
        bench_compose()
        sweep = bench_launch(work)
        bench_machinery(work, sweep)
        bench_launchers(work)
    width = max(len(r[0]) for r in ROWS)
    print(f"\nbench_sweep ({os.cpu_count()} cores, OMP_NUM_THREADS=1 in jobs)")
    for what, value, note in ROWS:
        print(f"{what.ljust(width)}  {value}  {note}".rstrip())


if __name__ == "__main__":
    main()
