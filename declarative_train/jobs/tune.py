"""``dtrain tune=lr_find`` (the range test, ``lr_find.json``/``lr_find.png``, no training), and the
``auto`` values of a training run (``optimizer.lr=auto``, ``data.batch_size=auto``).

Both tune the run's own components right after they are built: the trials train the real model
and then put its weights and the RNGs back (``engine/trial_runs.py``), so a run with
``optimizer.lr=auto`` is the run started with the suggested lr, bit for bit on a deterministic
device. The batch size is tuned first (the lr depends on it). Under DDP every rank tunes on its
own device and the ranks then agree: the smallest batch size of any rank, rank 0's lr.
"""

from __future__ import annotations

import importlib
import io
import logging
import math
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from declarative_train import checkpoint
from declarative_train.build import Components, build, seed_everything
from declarative_train.config.tuning import auto_keys, auto_placeholders
from declarative_train.engine.batch_size_search import (
    run_trial,
    search_batch_size,
    train_split_size,
)
from declarative_train.engine.range_test import RangeTestResult, RangeTestSettings, lr_range_test
from declarative_train.engine.trial_runs import TrialParts
from declarative_train.errors import ConfigError, ConfigIssue
from declarative_train.jobs.resume import resume_checkpoint
from declarative_train.utils.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger("declarative_train")

#: Fewer recorded steps than this before the loss diverged: the test says nothing.
MIN_STEPS = 5


def lr_find_job(cfg: DictConfig) -> dict[str, Any]:
    """Run the range test for ``cfg``; write ``lr_find.json`` (and ``lr_find.png``); return the json content.

    Raises :class:`ConfigError` (on ``tune.min_lr``) when the loss diverged at once.
    """
    output_dir = Path(cfg.paths.output_dir)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    with auto_placeholders(cfg):
        components = build(cfg)
    parts = trial_parts(components)
    batch_size = _tune_batch_size(cfg, components, parts) if "data.batch_size" in auto_keys(cfg) \
        else components.data.batch_size
    settings = range_settings(cfg)
    result = lr_range_test(parts, settings)
    _check_suggestion(result, settings)
    assert result.suggestion is not None
    content = {**result.to_dict(settings), "batch_size": batch_size}
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_dir / "lr_find.json", content)
    _plot(result, output_dir / "lr_find.png")
    print(f"suggested lr: {result.suggestion.lr:.4g} (rule: {result.suggestion.rule}; "
          f"{len(result.lrs)} steps, {result.stop_reason}); details in {output_dir / 'lr_find.json'}")
    return content


def tune_auto(cfg: DictConfig, components: Components) -> dict[str, Any]:
    """Replace the ``auto`` values of ``cfg`` (and of ``components``) by tuned ones; return them.

    ``components`` were built under :func:`auto_placeholders`. A resumed run takes the values
    its checkpoint's config recorded instead of tuning again.
    """
    keys = auto_keys(cfg)
    if not keys:
        return {}
    resumed = resume_checkpoint(cfg)
    if resumed:
        saved = checkpoint.read(resumed).get("config") or {}
        tuned = {key: OmegaConf.select(OmegaConf.create(saved), key) for key in keys}
        log.info("tuned values from %s: %s", resumed, tuned)
        for key, value in tuned.items():
            _apply(cfg, components, key, value)
        return _record(tuned)
    parts = trial_parts(components)
    tuned = {}
    if "data.batch_size" in keys:
        tuned["data.batch_size"] = _tune_batch_size(cfg, components, parts)
    if "optimizer.lr" in keys:
        settings = range_settings(cfg)
        result = lr_range_test(parts, settings)
        _check_suggestion(result, settings)
        assert result.suggestion is not None
        lr = float(components.distribution.broadcast_object(result.suggestion.lr)) \
            if _joined(components) else result.suggestion.lr
        log.info("optimizer.lr=auto: %.6g (rule %s, %d steps, %s)", lr, result.suggestion.rule,
                 len(result.lrs), result.stop_reason)
        _apply(cfg, components, "optimizer.lr", lr)
        tuned["optimizer.lr"] = lr
    return _record(tuned)


def trial_parts(components: Components) -> TrialParts:
    """The parts trial runs use: the run's own task, data, optimizer factory and device."""
    return TrialParts(task=components.task, data=components.data, optimizer=components.optimizer,
                      accelerator=components.accelerator, precision_mode=components.precision.mode,
                      settings=components.settings, seed=components.seed)


def range_settings(cfg: DictConfig) -> RangeTestSettings:
    """The range test's settings from ``cfg.tune``."""
    t = cfg.tune
    return RangeTestSettings(min_lr=t.min_lr, max_lr=t.max_lr, num_steps=t.num_steps, smoothing=t.smoothing,
                             divergence_factor=t.divergence_factor, rule=t.suggestion)


def _record(tuned: dict[str, Any]) -> dict[str, Any]:
    """``results.json``'s ``tuned``: ``lr`` and ``batch_size``."""
    return {key.rpartition(".")[2]: value for key, value in tuned.items()}


def _apply(cfg: DictConfig, components: Components, key: str, value: Any) -> None:
    OmegaConf.update(cfg, key, value, merge=False)
    if key == "optimizer.lr":
        components.optimizer = partial(components.optimizer, lr=value)
    else:
        components.data.batch_size = value


def _joined(components: Components) -> bool:
    """Join the process group (a no-op for one process) so the ranks can agree; whether there are several."""
    if components.distribution.world_size < 2:
        return False
    components.accelerator.setup()
    components.distribution.setup(components.accelerator.device)
    return True


def _tune_batch_size(cfg: DictConfig, components: Components, parts: TrialParts) -> int:
    t = cfg.tune
    limit = train_split_size(parts)
    if t.batch_size_start > limit:
        log.warning("data.batch_size=auto: tune.batch_size_start=%d is more than the train split's %d samples; "
                    "starting at %d", t.batch_size_start, limit, limit)
    budget = None if t.max_memory_gb is None else int(t.max_memory_gb * 2**30)
    chosen, trials = search_batch_size(lambda size: run_trial(parts, size, budget), start=t.batch_size_start,
                                       limit=limit, mode=t.batch_size_mode)
    if chosen is None:
        peak = trials[0].peak_bytes
        used = f"{peak / 2**30:.3g} GB" if peak is not None else "out of memory"
        raise ConfigError([ConfigIssue("tune.max_memory_gb" if peak is not None else "tune.batch_size_start",
                                       f"data.batch_size=auto: not even batch_size={trials[0].batch_size} fits "
                                       f"({used}; budget {t.max_memory_gb} GB)")])
    if _joined(components):  # the smallest choice of any rank: a sum of one-hot rows gathers them
        row = torch.zeros(components.distribution.world_size, dtype=torch.long, device=components.accelerator.device)
        row[components.distribution.rank] = chosen
        chosen = int(components.distribution.reduce_sum(row).min())
    log.info("data.batch_size=auto: %d (%s; tried %s)", chosen, t.batch_size_mode,
             ", ".join(f"{tr.batch_size}{'' if tr.fits else ' (no)'}" for tr in trials))
    _apply(cfg, components, "data.batch_size", chosen)
    return chosen


def _check_suggestion(result: RangeTestResult, settings: RangeTestSettings) -> None:
    if result.suggestion is not None and len(result.lrs) >= MIN_STEPS:
        return
    lowest = result.lowest_loss
    seen = (f"the lowest smoothed loss was {lowest[0]:.4g} at lr {lowest[1]:.3g}" if lowest
            else "no finite loss was seen")
    raise ConfigError([ConfigIssue("tune.min_lr", (
        f"the learning-rate range test diverged at once ({result.stop_reason}, after {len(result.lrs)} steps from "
        f"lr {settings.min_lr:g}): {seen}; lower tune.min_lr, raise tune.divergence_factor, or check the model"))])


def _plot(result: RangeTestResult, path: Path) -> None:
    try:
        importlib.import_module("matplotlib").use("Agg")  # files only, never a window
        pyplot: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        log.info("matplotlib is not installed: lr_find.png not written (lr_find.json has the curve)")
        return
    figure, axes = pyplot.subplots(figsize=(6, 4))
    axes.plot(result.lrs, result.losses, alpha=0.3, label="loss")
    axes.plot(result.lrs, result.smoothed, label="smoothed loss")
    if result.suggestion is not None:
        axes.axvline(result.suggestion.lr, color="red", linestyle="--",
                     label=f"suggestion {result.suggestion.lr:.3g} ({result.suggestion.rule})")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:
        axes.set_ylim(top=max(finite[0], min(finite)) * 2 if finite[0] > 0 else None)
    axes.legend()
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png")
    pyplot.close(figure)
    atomic_write_bytes(path, image.getvalue())
