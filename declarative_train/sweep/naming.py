"""A sweep job's identity: its own overrides, and a readable run name built from them."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

#: Overrides that say how a sweep runs, not what a job trains: left out of names and hparams.
PLUMBING_KEYS = ("sweep", "hydra", "ckpt_path", "hparams_search", "logger")
MAX_NAME_LENGTH = 120


def is_plumbing(override: str) -> bool:
    """Whether ``override`` (``key=value``) sets one of :data:`PLUMBING_KEYS` or a key under them."""
    key = _key(override)
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in PLUMBING_KEYS)


def job_overrides() -> list[str]:
    """This sweep job's overrides of the swept keys; empty outside a multirun.

    Swept keys are those of ``hydra.sweeper.params`` (Optuna's search space) and those given a
    sweep (``a=1,2``, ``range(...)``) on the command line. Overrides every job shares, and the
    plumbing ones (:data:`PLUMBING_KEYS`), are left out; when nothing is swept, every
    non-plumbing override is kept. Registered as the ``dt_job_overrides`` resolver, behind
    ``sweep.job_overrides``.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    hydra = HydraConfig.get()
    overrides = [str(o) for o in hydra.overrides.task if not is_plumbing(str(o))]
    params = list((hydra.sweeper.get("params") or {}).keys())
    swept = set(params) | _command_line_sweeps(str(hydra.sweep.dir))
    varying = [o for o in overrides if _key(o) in swept]
    return varying or overrides


@functools.lru_cache(maxsize=8)
def _command_line_sweeps(sweep_dir: str) -> frozenset[str]:
    """Keys swept on the command line, from the ``multirun.yaml`` Hydra's basic sweeper writes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return frozenset()
    task = OmegaConf.select(OmegaConf.load(path), "hydra.overrides.task") or []
    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
    except Exception:  # Hydra accepted these once; if they no longer parse, name jobs by all overrides
        return frozenset()
    return frozenset(o.key_or_group for o in parsed if o.is_sweep_override())


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def run_name(overrides: Iterable[str]) -> str:
    """``optimizer.lr=0.01,model=cnn``: a folder name for TensorBoard (``/`` becomes ``_``).

    Names longer than :data:`MAX_NAME_LENGTH` are cut and end in a short hash, so they stay unique.
    """
    name = ",".join(overrides).replace("/", "_").replace("\\", "_")
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME_LENGTH - 9]}~{digest}"
    return name
