"""``optimizer.lr=auto``, ``data.batch_size=auto`` and the ``tune`` section: checks and placeholders.

``auto`` is not a value a constructor takes, so everything that builds before the job tunes
(validation's signature checks, shapes, ``check_components``, ``dry_run``) sees a placeholder:
``tune.min_lr`` for the lr, ``tune.batch_size_start`` for the batch size (:func:`auto_placeholders`).
The job then replaces ``auto`` by the tuned value (``jobs/tune.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from declarative_train.engine.batch_size_search import BATCH_SIZE_MODES
from declarative_train.engine.lr_range import SUGGESTION_RULES
from declarative_train.errors import ConfigIssue
from declarative_train.utils.text import not_one_of

AUTO = "auto"
#: The keys that take ``auto``, in the order the job tunes them (the lr depends on the batch size).
AUTO_KEYS = ("data.batch_size", "optimizer.lr")
TUNE_MODES = (None, "lr_find")


def auto_keys(cfg: Any) -> list[str]:
    """The keys of ``AUTO_KEYS`` set to ``auto`` in ``cfg`` (a DictConfig or a plain dict)."""
    found = []
    for key in AUTO_KEYS:
        section, _, name = key.partition(".")
        node = cfg.get(section)
        if isinstance(node, (dict, DictConfig)) and node.get(name) == AUTO:
            found.append(key)
    return found


def _placeholder(cfg: DictConfig, key: str) -> Any:
    tune = cfg.get("tune")
    if key == "optimizer.lr":
        return tune.min_lr if tune is not None else 1e-3
    return tune.batch_size_start if tune is not None else 32


@contextlib.contextmanager
def auto_placeholders(cfg: DictConfig) -> Iterator[list[str]]:
    """Within the block, the ``auto`` keys of ``cfg`` hold placeholders; yields those keys."""
    keys = auto_keys(cfg)
    for key in keys:
        OmegaConf.update(cfg, key, _placeholder(cfg, key), merge=False)
    try:
        yield keys
    finally:
        for key in keys:
            OmegaConf.update(cfg, key, AUTO, merge=False)


def tune_issues(cfg: dict[str, Any]) -> list[ConfigIssue]:
    """Problems of the ``tune`` section and of the ``auto`` values (a resolved, plain config)."""
    tune = cfg.get("tune") or {}
    issues: list[ConfigIssue] = []

    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            issues.append(ConfigIssue(f"tune.{key}", message))

    if tune.get("mode") not in TUNE_MODES:
        issues.append(ConfigIssue("tune.mode", not_one_of(tune.get("mode"), ("lr_find", "null"))))
    if tune:
        need(tune["min_lr"] > 0, "min_lr", f"must be > 0, got {tune['min_lr']}")
        need(tune["min_lr"] < tune["max_lr"], "min_lr",
             f"must be < tune.max_lr, got min_lr={tune['min_lr']} and max_lr={tune['max_lr']}")
        need(tune["num_steps"] >= 2, "num_steps", f"must be >= 2, got {tune['num_steps']}")
        need(0 < tune["smoothing"] <= 1, "smoothing", f"must be in (0, 1], got {tune['smoothing']}")
        need(tune["divergence_factor"] > 1, "divergence_factor", f"must be > 1, got {tune['divergence_factor']}")
        need(tune["suggestion"] in SUGGESTION_RULES, "suggestion", not_one_of(tune["suggestion"], SUGGESTION_RULES))
        need(tune["batch_size_start"] >= 1, "batch_size_start", f"must be >= 1, got {tune['batch_size_start']}")
        need(tune["batch_size_mode"] in BATCH_SIZE_MODES, "batch_size_mode",
             not_one_of(tune["batch_size_mode"], BATCH_SIZE_MODES))
        memory = tune["max_memory_gb"]
        need(memory is None or memory > 0, "max_memory_gb", f"must be > 0 or null, got {memory}")
    if tune.get("mode") == "lr_find" and (cfg.get("accelerator") or {}).get("devices") not in (1, "auto", [0]):
        issues.append(ConfigIssue("tune.mode", "tune=lr_find runs in one process: set accelerator.devices=1"))
    return issues
