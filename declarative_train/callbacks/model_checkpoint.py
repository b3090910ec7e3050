"""Save checkpoints every N epochs, steps or seconds: the best ``save_top_k`` by a monitored
metric, and ``last.ckpt``."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from declarative_train.callbacks.base import Callback, check_mode, is_improvement, resolve_mode
from declarative_train.checkpoint import (
    CheckpointError,
    delete_sharded,
    is_sharded,
    remove_tree,
    stale_temp_files,
    stale_temp_folders,
)
from declarative_train.engine import Event, TrainingContext
from declarative_train.errors import ArgumentError

log = logging.getLogger(__name__)


class ModelCheckpoint(Callback):
    """Keep the ``save_top_k`` best checkpoints by ``monitor`` (all with -1, none with 0).

    Files are ``<dirpath>/epoch=E-step=S.ckpt`` (0-based epoch) and ``<dirpath>/last.ckpt``; under a
    distribution that saves sharded checkpoints (FSDP) each of these paths is a folder instead
    (as Lightning's sharded checkpoints are), deleted the same way when it leaves the top k.
    Without a ``monitor`` the newest ``save_top_k`` are kept. ``best_model_path`` and
    ``best_model_score`` name the best one. The table is part of every checkpoint, so it survives
    resuming into another folder; files of another folder leave the table when they drop out of
    the top k, but are not deleted.

    When ``monitor`` is a validation metric (``val/*``), a candidate is saved after every
    validation run, scored by that run (Lightning's rule): mid-epoch validations
    (``val_check_interval``) each give a candidate, and epochs without validation
    (``check_val_every_n_epoch``) give none. With a training metric or no monitor, candidates are
    saved at epoch ends. Either way ``every_n_epochs`` thins them out, and ``every_n_train_steps``
    and ``train_time_interval`` add saves scored by the latest values. Saves happen at the
    executor's checkpoint points (after the step's or epoch's validation), so every file resumes
    exactly; a validation run between two optimizer steps (gradient accumulation) is not
    checkpointed, since the weights change before the next checkpoint point.

    Args:
        dirpath: folder for checkpoint files.
        monitor: metric name, e.g. ``val/acc``.
        mode: ``max`` or ``min``; ``None`` takes it from the monitored metric's
            ``higher_is_better`` (losses: ``min``).
        save_top_k: how many best checkpoints to keep.
        save_last: also write ``last.ckpt`` every time.
        every_n_epochs: save in every N-th epoch (after its validations, or at its end; 0: never
            by epochs).
        every_n_train_steps: also save every N optimizer steps (``None``/0: off).
        train_time_interval: also save after a step once this many seconds have passed since the
            last save (``None``: off).
        filename: name of top-k files, formatted with ``epoch`` and ``step``.
        write_in_background: take a snapshot of the state on the training loop and write it on
            a background thread, so training does not wait for the disk (see
            :mod:`declarative_train.checkpoint.writer`); a file that leaves the top k is deleted
            once its replacement is in place. ``write_last`` always waits.
    """

    runs_in_fast_dev_run = False

    def __init__(
        self, dirpath: str = "checkpoints", monitor: str | None = None, mode: str | None = None,
        save_top_k: int = 1, save_last: bool = True, every_n_epochs: int = 1,
        every_n_train_steps: int | None = None, train_time_interval: float | None = None,
        filename: str = "epoch={epoch}-step={step}", write_in_background: bool = True,
    ) -> None:
        for argument, value, least in (("save_top_k", save_top_k, -1), ("every_n_epochs", every_n_epochs, 0),
                                       ("every_n_train_steps", every_n_train_steps or 0, 0)):
            if value < least:
                raise ArgumentError("ModelCheckpoint", argument, f"must be >= {least}, got {value}")
        if train_time_interval is not None and train_time_interval <= 0:
            raise ArgumentError("ModelCheckpoint", "train_time_interval", f"must be > 0 seconds (or null), got "
                                                                         f"{train_time_interval}")
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.mode = check_mode("ModelCheckpoint", mode)
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.train_time_interval = train_time_interval
        self.filename = filename
        self.write_in_background = write_in_background
        self.best_k_models: dict[str, float] = {}
        self.best_model_path: str = ""
        self.best_model_score: float | None = None
        self.last_model_path: str = ""
        self._last_save_time = 0.0
        self._saved_at: tuple[int, bool] | None = None
        self._validated_at: int | None = None  # the global step of a validation not saved yet
        self._warned = False
        self._warned_accumulation = False

    def attach(self, context: TrainingContext) -> None:
        self.mode = resolve_mode("ModelCheckpoint", self.mode, self.monitor, context)
        self._last_save_time = time.monotonic()
        if self.every_n_epochs and self._saves_after_validation(context):
            self.listen(context, Event.FIT_START, self._forget_validation)
            self.listen(context, Event.EVAL_END, self._note_validation)
            self.listen(context, Event.STEP_CHECKPOINT, self._save_after_validation)
            self.listen(context, Event.EPOCH_CHECKPOINT, self._save_after_validation)
        elif self.every_n_epochs:
            self.listen(context, Event.EPOCH_CHECKPOINT, self.save, every=self.every_n_epochs)
        if self.every_n_train_steps:
            self.listen(context, Event.STEP_CHECKPOINT, self.save, every=self.every_n_train_steps)
        if self.train_time_interval:
            self.listen(context, Event.STEP_CHECKPOINT, self._save_if_time_passed)
        if context.distribution.is_global_zero and self.dirpath.is_dir():
            for leftover in stale_temp_files(self.dirpath):  # from a process killed while writing
                log.info("ModelCheckpoint: removing %s, left by an interrupted write", leftover)
                leftover.unlink(missing_ok=True)
            for folder in stale_temp_folders(self.dirpath):  # sharded saves (or deletions) cut short
                log.info("ModelCheckpoint: removing %s, left by an interrupted write", folder)
                remove_tree(folder)

    def _saves_after_validation(self, context: TrainingContext) -> bool:
        return bool(self.monitor and self.monitor.startswith("val/") and context.state.num_val_batches)

    def _forget_validation(self, context: TrainingContext) -> None:
        self._validated_at = None  # a validate() before fit is not a candidate

    def _note_validation(self, context: TrainingContext) -> None:
        if context.state.stage == "val":
            self._validated_at = context.state.global_step

    def _save_after_validation(self, context: TrainingContext) -> None:
        """At a checkpoint point: save the candidate of the validation that just ran, if any."""
        state = context.state
        if self._validated_at is None:
            return
        if self._validated_at != state.global_step:  # validated between two optimizer steps
            if not self._warned_accumulation:
                log.warning("ModelCheckpoint: a validation ran between two optimizer steps (gradient "
                            "accumulation); it is not checkpointed, since the weights change before the "
                            "next step. Make val_check_interval a multiple of accumulate_grad_batches.")
                self._warned_accumulation = True
            self._validated_at = None
            return
        if not state.epoch_finished and state.batch_idx >= state.num_train_batches:
            return  # the epoch's last batch: saved at the epoch's own checkpoint point
        self._validated_at = None
        if (state.epoch + 1) % self.every_n_epochs == 0:
            self.save(context)

    def _save_if_time_passed(self, context: TrainingContext) -> None:
        assert self.train_time_interval is not None
        due = time.monotonic() - self._last_save_time >= self.train_time_interval
        distribution = context.distribution
        if distribution.world_size > 1:  # every rank saves at the same step: when any rank's clock says so
            due = bool(distribution.reduce_sum(torch.tensor(float(due), device=context.device)) > 0)
        if due:
            self.save(context)

    def write_last(self, context: TrainingContext) -> str:
        """Write ``last.ckpt`` now (also with ``save_last=False``); return its path."""
        self.last_model_path = str(self.dirpath / "last.ckpt")
        context.save_checkpoint(self.last_model_path)
        return self.last_model_path

    def save(self, context: TrainingContext) -> None:
        """Save a top-k candidate and ``last.ckpt`` for the current training state."""
        state = context.state
        position = (state.global_step, state.epoch_finished)
        if position == self._saved_at:
            return  # several cadences met at the same point
        self._saved_at, self._last_save_time = position, time.monotonic()
        context.wait_for_checkpoints()  # a failed background write puts its table back first
        before = self.state_dict()
        paths: list[str] = []
        score = state.metrics.get(self.monitor) if self.monitor else None
        if self.monitor and score is None:
            if not self._warned:
                log.warning("ModelCheckpoint: monitor %r has no value yet (epoch %d, step %d); only "
                            "last.ckpt is saved until it has", self.monitor, state.epoch, state.global_step)
                self._warned = True
        elif self.save_top_k != 0:
            path = str(self.dirpath / (self.filename.format(epoch=state.epoch, step=state.global_step) + ".ckpt"))
            if self._qualifies(score):
                paths.append(path)
                self.best_k_models[path] = score if score is not None else float(state.global_step)
        if self.save_last:
            self.last_model_path = str(self.dirpath / "last.ckpt")
            paths.append(self.last_model_path)
        evicted = self._trim()
        self._update_best()
        restore = functools.partial(self._set_table, before)  # nothing written: the table stays true to the disk
        try:  # the table inside already lists this file
            context.save_checkpoint(*paths, background=self.write_in_background,
                                     then=functools.partial(self._delete, evicted), on_failure=restore)
        except BaseException:
            restore()
            raise

    def _delete(self, evicted: list[str]) -> None:
        """Delete checkpoints that left the top k (once the checkpoint replacing them is in place)."""
        for path in evicted:
            if Path(path).parent.resolve() != self.dirpath.resolve() or Path(path).suffix != ".ckpt":
                continue  # another run's file (or a name a foreign table made up): not ours to delete
            if Path(path).is_dir():
                try:
                    delete_sharded(path)  # only a folder with our manifest
                except CheckpointError as exc:
                    log.warning("ModelCheckpoint: %s", exc)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def _qualifies(self, score: float | None) -> bool:
        if self.save_top_k < 0 or len(self.best_k_models) < self.save_top_k:
            return score is None or score == score  # NaN never qualifies
        if score is None:
            return True  # no monitor: the newest replaces the oldest
        return is_improvement(score, self._worst_score(), self._mode)

    @property
    def _mode(self) -> str:
        assert self.mode is not None, "attach() decides the mode"
        return self.mode

    def _worst_score(self) -> float:
        scores = self.best_k_models.values()
        return min(scores) if self.mode == "max" else max(scores)

    def _trim(self) -> list[str]:
        if self.save_top_k < 0:
            return []
        evicted = []
        while len(self.best_k_models) > self.save_top_k:
            key = min if (self.mode == "max" or not self.monitor) else max
            worst = key(self.best_k_models, key=self.best_k_models.__getitem__)
            del self.best_k_models[worst]
            evicted.append(worst)
        return evicted

    def _update_best(self) -> None:
        if not self.best_k_models:
            return
        pick = max if (self.mode == "max" or not self.monitor) else min
        self.best_model_path = pick(self.best_k_models, key=self.best_k_models.__getitem__)
        self.best_model_score = self.best_k_models[self.best_model_path] if self.monitor else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor, "mode": self.mode, "best_k_models": dict(self.best_k_models),
            "best_model_path": self.best_model_path, "best_model_score": self.best_model_score,
            "last_model_path": self.last_model_path,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("monitor") != self.monitor:
            log.warning("ModelCheckpoint: checkpoint monitored %r, now %r; starting a new top-k table",
                        state.get("monitor"), self.monitor)
            return
        self._set_table(state)

    def _set_table(self, state: dict[str, Any]) -> None:
        self.best_k_models = {}
        for path, score in state["best_k_models"].items():
            if Path(path).is_file() or is_sharded(path):
                self.best_k_models[path] = score
            else:
                log.warning("ModelCheckpoint: %s from the resumed run's top-k table is gone; dropped", path)
        self.last_model_path = state.get("last_model_path", "")
        self._update_best()
        if not self.best_k_models:
            self.best_model_path, self.best_model_score = "", None
