"""The Hydra callback that writes and prints a sweep's summary, and checks ``sweep.resume``.

Hydra calls ``on_multirun_end`` only when the sweeper returns; a sweeper that raises (Hydra's
basic sweeper does after a batch with a failed job) skips it. ``close_sweep`` covers both: the
CLI calls it after every multirun, and it writes the summary if the callback did not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from declarative_train.errors import Abort, ConfigError, ConfigIssue
from declarative_train.sweep.grid import BASIC_SWEEPER, sweep_arguments
from declarative_train.sweep.summary import SweepSummary, summarize

log = logging.getLogger(__name__)


@attrs.define
class _SweepTracker:
    """The sweep launched by this process, and its summary once written."""

    sweep_dir: Path | None = None
    summary: SweepSummary | None = None


_TRACKER = _SweepTracker()


class SweepSummaryCallback(Callback):
    """``on_multirun_start``: check a resumed sweep. ``on_multirun_end``: write and print the summary.

    Configured in ``conf/hydra/default.yaml`` (``hydra.callbacks.sweep_summary``).
    """

    def __init__(self, print_table: bool = True) -> None:
        self.print_table = print_table

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if OmegaConf.select(config, "sweep.resume", default=False):
            _check_resumable(config, sweep_dir)
        _TRACKER.sweep_dir, _TRACKER.summary = sweep_dir, None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        report_sweep(print_table=self.print_table)


def report_sweep(print_table: bool = True, unfinished: str = "running") -> SweepSummary | None:
    """Write (once) and print the summary of the sweep this process launched, if any."""
    if _TRACKER.sweep_dir is None or _TRACKER.summary is not None:
        return _TRACKER.summary
    summary = summarize(_TRACKER.sweep_dir, unfinished)
    if summary.rows:
        _, md_path = summary.write()
        if print_table:
            print(f"\nSweep summary ({md_path}):\n{summary.table()}\n", flush=True)
    _TRACKER.summary = summary
    return summary


def close_sweep(stopped: bool = False) -> SweepSummary | None:
    """After a multirun (returned or raised): its summary, written now if not yet; forget it.

    ``stopped``: the sweep was interrupted or crashed, so job folders without results are
    listed as ``interrupted``.
    """
    summary = report_sweep(unfinished="interrupted" if stopped else "running")
    _TRACKER.sweep_dir, _TRACKER.summary = None, None
    return summary


def _check_resumable(config: DictConfig, sweep_dir: Path) -> None:
    """Exit 2 unless re-running this grid into ``sweep_dir`` repeats the very same jobs."""
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    problem = None
    if sweeper != BASIC_SWEEPER:
        problem = f"resuming needs a grid sweep (Hydra's basic sweeper), not {sweeper}"
    elif (sweep_dir / "multirun.yaml").is_file():
        before = _grid(OmegaConf.load(sweep_dir / "multirun.yaml"))
        now = _grid(config)
        if before != now:
            problem = (f"{sweep_dir} was launched with {' '.join(before) or 'no overrides'}, "
                       f"not {' '.join(now) or 'no overrides'}: resume with the same overrides")
    else:
        log.warning("sweep.resume: %s holds no earlier sweep; running every job", sweep_dir)
    if problem:
        # Hydra turns exceptions raised in callbacks into warnings; Abort passes through to the CLI.
        raise Abort(ConfigError([ConfigIssue("sweep.resume", problem)]))


def _grid(config: Any) -> list[str]:
    return [arg for arg in sweep_arguments(config) if not arg.lstrip("+~").startswith("sweep.")]
