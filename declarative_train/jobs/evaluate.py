"""``dtrain-eval``: evaluate a checkpoint on the test (or val) split and write results.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict

from declarative_train import checkpoint
from declarative_train.build import build, infer_data_shapes, seed_everything
from declarative_train.config.stored import SECTIONS, StoredSections, stored_issues, take_sections
from declarative_train.config.validate import validate_config
from declarative_train.errors import ConfigError, ConfigIssue
from declarative_train.jobs.provenance import warn_if_code_differs
from declarative_train.utils.io import atomic_write_json

log = logging.getLogger("declarative_train")


def eval_job(cfg: DictConfig) -> dict[str, Any]:
    """Validate, load the checkpoint, evaluate, write ``results.json``; return its content.

    With ``use_ckpt_config`` the model, data, metrics and precision come from the checkpoint's
    stored config, checked as untrusted data first (``config/stored.py``); a group chosen or a
    key set on the command line wins over the stored one. Raises
    :class:`~declarative_train.errors.ConfigError` for a bad command line or a refused stored
    config, and :class:`~declarative_train.errors.CheckpointError` for an unusable checkpoint.
    """
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError([ConfigIssue("ckpt_path", "missing mandatory value (dtrain-eval ckpt_path=PATH)")])
    if cfg.split not in ("test", "val"):
        raise ConfigError([ConfigIssue("split", f"must be 'test' or 'val', got {cfg.split!r}")])
    checkpoint_command_config(cfg, "dtrain-eval")
    started = time.perf_counter()
    seed_everything(cfg.seed)
    executor = build(cfg).executor()
    run = executor.test if cfg.split == "test" else executor.validate
    metrics = run(cfg.ckpt_path)
    results = {
        "status": "ok",
        "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
        "split": cfg.split,
        cfg.split: metrics,
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    atomic_write_json(Path(cfg.paths.output_dir) / "results.json", results)
    log.info("%s metrics of %s: %s", cfg.split, cfg.ckpt_path, metrics)
    print(" ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
    return results


def checkpoint_command_config(cfg: DictConfig, command: str) -> dict[str, Any]:
    """Read ``cfg.ckpt_path`` and make ``cfg`` the config to run it with; return the checkpoint.

    Warns when the code differs from the checkpoint's, takes the stored sections
    (:func:`use_checkpoint_config`) unless ``use_ckpt_config=false``, validates, and fills the
    data's shapes: what ``dtrain-eval`` and ``dtrain-predict`` do before building.
    """
    saved = checkpoint.read(cfg.ckpt_path)
    warn_if_code_differs(saved.get("meta"), cfg.ckpt_path)
    if cfg.use_ckpt_config:
        use_checkpoint_config(cfg, saved, command)
    validate_config(cfg)
    infer_data_shapes(cfg)
    return saved


def use_checkpoint_config(cfg: DictConfig, saved: dict[str, Any], command: str) -> None:
    """Put the model, data, metrics and precision stored in ``saved`` into ``cfg``, checked first.

    The stored sections are untrusted data (``config/stored.py``); a group chosen or a key set on
    the command line wins over the stored one. A checkpoint without a stored config changes
    nothing. Raises :class:`~declarative_train.errors.ConfigError` for a refused stored config.
    """
    if not isinstance(saved.get("config"), dict):
        return
    overrides = command_line_overrides()
    sections = take_sections(saved["config"], [o.key_or_group for o in overrides if o.key_or_group in SECTIONS])
    issues = stored_issues(sections, list(cfg.user_packages))
    if issues:
        raise ConfigError(issues)
    applied = _use_sections(cfg, sections, overrides)
    log.info("%s of %s: %s%s", command, cfg.ckpt_path, sections.describe(),
             f"; the command line sets {', '.join(applied)}" if applied else "")


def command_line_overrides() -> list[Override]:
    """This command's overrides as Hydra parsed them (none outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))


def _use_sections(cfg: DictConfig, sections: StoredSections, overrides: list[Override]) -> list[str]:
    """Put the stored sections into ``cfg``, then the command line's keys inside them again.

    Returns the command-line overrides applied over the stored values.
    """
    applied = []
    with open_dict(cfg):
        for name, value in sections.taken.items():
            if name == "precision":  # a typed node: merge into it
                cfg.precision = OmegaConf.merge(cfg.precision, value)
            else:
                cfg[name] = OmegaConf.create(value)
        for override in overrides:
            key = override.key_or_group
            if key.partition(".")[0] in sections.taken and "." in key and not override.is_delete():
                OmegaConf.update(cfg, key, override.value(), force_add=True)
                applied.append(override.input_line or key)
    return applied
