"""Save checkpoints at epoch ends: the best ``save_top_k`` by a monitored metric, and ``last.ckpt``."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from declarative_train.callbacks.base import Callback, is_improvement
from declarative_train.engine.events import Event

log = logging.getLogger(__name__)


class ModelCheckpoint(Callback):
    """Keep the ``save_top_k`` best checkpoints by ``monitor`` (all with -1, none with 0).

    Files are ``<dirpath>/epoch=E-step=S.ckpt`` (0-based epoch) and ``<dirpath>/last.ckpt``.
    Without a ``monitor`` the newest ``save_top_k`` are kept. ``best_model_path`` and
    ``best_model_score`` name the best one; the table survives resuming into another folder.

    Args:
        dirpath: folder for checkpoint files.
        monitor: metric name, e.g. ``val/acc``.
        mode: ``max`` or ``min``.
        save_top_k: how many best checkpoints to keep.
        save_last: also write ``last.ckpt`` every time.
        every_n_epochs: save every N epochs.
    """

    runs_in_fast_dev_run = False

    def __init__(
        self, dirpath: str = "checkpoints", monitor: str | None = None, mode: str = "min",
        save_top_k: int = 1, save_last: bool = True, every_n_epochs: int = 1,
        filename: str = "epoch={epoch}-step={step}",
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ModelCheckpoint: mode must be 'min' or 'max', got {mode!r}")
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.mode = mode
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.every_n_epochs = every_n_epochs
        self.filename = filename
        self.best_k_models: dict[str, float] = {}
        self.best_model_path: str = ""
        self.best_model_score: float | None = None
        self.last_model_path: str = ""

    def attach(self, executor: Any) -> None:
        executor.events.on(Event.EPOCH_END, self._on_epoch_end, every=self.every_n_epochs)

    def _on_epoch_end(self, executor: Any) -> None:
        state = executor.state
        paths: list[str] = []
        score = state.metrics.get(self.monitor) if self.monitor else None
        if self.monitor and score is None:
            log.warning("ModelCheckpoint: monitor %r has no value at epoch %d; only last.ckpt is saved",
                        self.monitor, state.epoch)
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
        executor.save_checkpoint(*paths)
        if executor.distribution.is_global_zero:
            for path in evicted:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    def _qualifies(self, score: float | None) -> bool:
        if self.save_top_k < 0 or len(self.best_k_models) < self.save_top_k:
            return score is None or score == score  # NaN never qualifies
        if score is None:
            return True  # no monitor: the newest replaces the oldest
        return is_improvement(score, self._worst_score(), self.mode)

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
        self.best_k_models = dict(state["best_k_models"])
        self.best_model_path = state["best_model_path"]
        self.best_model_score = state["best_model_score"]
        self.last_model_path = state.get("last_model_path", "")
