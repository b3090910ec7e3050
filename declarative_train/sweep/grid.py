"""The job list of a grid sweep, recomputed from its ``multirun.yaml`` (to list jobs not started)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
DEFAULT_SUBDIR = "${hydra.job.num}"


def sweep_arguments(config: object) -> list[str]:
    """A sweep's grid as Hydra's basic sweeper sees it: ``hydra.sweeper.params`` then the task overrides."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}  # type: ignore[arg-type]
    task = OmegaConf.select(config, "hydra.overrides.task") or []  # type: ignore[arg-type]
    return [f"{k}={v}" for k, v in params.items()] + [str(o) for o in task]


def expected_jobs(sweep_dir: Path) -> list[tuple[str, list[str]]]:
    """``(folder name, overrides)`` of every job of a grid sweep; empty when that cannot be known.

    Only Hydra's basic sweeper with the default ``hydra.sweep.subdir`` has a job list fixed in
    advance; Optuna samples its trials as it goes.
    """
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return []
    config = OmegaConf.load(path)
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")  # type: ignore[union-attr]
    if sweeper != BASIC_SWEEPER or subdir != DEFAULT_SUBDIR:
        return []
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(sweep_arguments(config))
        (jobs,) = BasicSweeper.split_arguments(overrides, None)
    except Exception as exc:  # a grid Hydra itself would have rejected: list only what exists
        log.debug("cannot expand the grid of %s: %s", path, exc)
        return []
    return [(str(num), [o for o in job if not o.startswith("sweep.")]) for num, job in enumerate(jobs)]
