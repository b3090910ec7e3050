"""Which checkpoint fit starts from: ``ckpt_path``, or the newest ``last.ckpt`` for ``resume=auto``."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from declarative_train.checkpoint import is_sharded

log = logging.getLogger("declarative_train")


def newest_last_checkpoint(folder: str | Path) -> Path | None:
    """The most recently written ``last.ckpt`` (a file, or a sharded folder) anywhere under ``folder``
    (``None``: there is none)."""
    candidates = [p for p in Path(folder).rglob("last.ckpt") if p.is_file() or is_sharded(p)]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to resume fit from for a validated ``cfg`` (``None``: start fresh)."""
    if cfg.get("resume") != "auto":
        return cfg.ckpt_path
    folder = cfg.get("resume_dir") or cfg.paths.output_dir
    found = newest_last_checkpoint(folder)
    if found is None:
        log.info("resume=auto: no last.ckpt under %s; starting from scratch", folder)
        return None
    log.info("resume=auto: resuming from %s", found)
    return str(found)
