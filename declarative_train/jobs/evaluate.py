"""``dtrain-eval``: evaluate a checkpoint on the test (or val) split and write results.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from declarative_train import checkpoint
from declarative_train.build import build, seed_everything
from declarative_train.config.validate import validate_config
from declarative_train.errors import ConfigError, ConfigIssue
from declarative_train.utils.io import atomic_write_json

log = logging.getLogger("declarative_train")

#: Sections taken from the checkpoint's stored config when ``use_ckpt_config`` is on.
CKPT_SECTIONS = ("model", "data", "metrics", "precision")


def eval_job(cfg: DictConfig) -> dict[str, Any]:
    """Validate, load the checkpoint, evaluate, write ``results.json``; return its content.

    Raises :class:`~declarative_train.errors.ConfigError` for a bad command line and
    :class:`~declarative_train.errors.CheckpointError` for a checkpoint that cannot be used.
    """
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError([ConfigIssue("ckpt_path", "missing mandatory value (dtrain-eval ckpt_path=PATH)")])
    if cfg.split not in ("test", "val"):
        raise ConfigError([ConfigIssue("split", f"must be 'test' or 'val', got {cfg.split!r}")])
    saved = checkpoint.read(cfg.ckpt_path)
    if cfg.use_ckpt_config and saved.get("config"):
        _take_stored_sections(cfg, OmegaConf.create(saved["config"]))
    validate_config(cfg)
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


def _take_stored_sections(cfg: DictConfig, stored: DictConfig) -> None:
    with open_dict(cfg):
        for section in CKPT_SECTIONS:
            if section == "precision":  # a typed node: merge into it
                cfg.precision = OmegaConf.merge(cfg.precision, stored.precision)
            elif section in stored:
                cfg[section] = stored[section]
