"""A sweep job's identity: its own overrides, and a readable run name built from them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

#: Overrides that say how a sweep runs, not what a job trains: left out of names and hparams.
PLUMBING_KEYS = ("sweep", "hydra", "ckpt_path", "hparams_search", "logger")
MAX_NAME_LENGTH = 120


def is_plumbing(override: str) -> bool:
    """Whether ``override`` (``key=value``) sets one of :data:`PLUMBING_KEYS` or a key under them."""
    key = override.partition("=")[0].lstrip("+~")
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in PLUMBING_KEYS)


def job_overrides() -> list[str]:
    """This sweep job's overrides without the plumbing ones; empty outside a multirun.

    Registered as the ``dt_job_overrides`` resolver, behind ``sweep.job_overrides``.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    return [o for o in HydraConfig.get().overrides.task if not is_plumbing(o)]


def run_name(overrides: Iterable[str]) -> str:
    """``optimizer.lr=0.01,model=cnn``: a folder name for TensorBoard (``/`` becomes ``_``).

    Names longer than :data:`MAX_NAME_LENGTH` are cut and end in a short hash, so they stay unique.
    """
    name = ",".join(overrides).replace("/", "_").replace("\\", "_")
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME_LENGTH - 9]}~{digest}"
    return name
