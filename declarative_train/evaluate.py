"""``dtrain-eval``: evaluate a checkpoint on the test (or val) split and write results.json."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from declarative_train.build import build, seed_everything
from declarative_train.config.issues import ConfigError, ConfigIssue
from declarative_train.config.validate import validate_config
from declarative_train.engine import checkpointing
from declarative_train.utils.io import atomic_write_json

log = logging.getLogger("declarative_train")

#: Sections taken from the checkpoint's stored config when ``use_ckpt_config`` is on.
CKPT_SECTIONS = ("model", "data", "metrics", "precision")


def eval_job(cfg: DictConfig) -> dict[str, Any]:
    """Hydra job for ``dtrain-eval``: validate, load the checkpoint, evaluate, write results."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        _exit_bad_config([ConfigIssue("ckpt_path", "missing mandatory value (dtrain-eval ckpt_path=PATH)")])
    if cfg.split not in ("test", "val"):
        _exit_bad_config([ConfigIssue("split", f"must be 'test' or 'val', got {cfg.split!r}")])
    try:
        checkpoint = checkpointing.read(cfg.ckpt_path)
    except checkpointing.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if cfg.use_ckpt_config and checkpoint.get("config"):
        stored = OmegaConf.create(checkpoint["config"])
        with open_dict(cfg):
            for section in CKPT_SECTIONS:
                if section == "precision":  # a typed node: merge into it
                    cfg.precision = OmegaConf.merge(cfg.precision, stored.precision)
                elif section in stored:
                    cfg[section] = stored[section]
    try:
        validate_config(cfg)
    except ConfigError as exc:
        _exit_bad_config(exc.issues)
    started = time.perf_counter()
    seed_everything(cfg.seed)
    executor = build(cfg).executor()
    try:
        run = executor.test if cfg.split == "test" else executor.validate
        metrics = run(cfg.ckpt_path)
    except checkpointing.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
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


def _exit_bad_config(issues: list[ConfigIssue]) -> None:
    print(ConfigError(issues).format(), file=sys.stderr)
    sys.exit(2)
