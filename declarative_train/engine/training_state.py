"""What the executor checkpoints, as named parts, and the checks around restoring them.

The checkpoint package stores and restores any mapping of ``Stateful`` parts; this module says
which parts a training run consists of (model, optimizer, scheduler, GradScaler, loop position,
sampler, metric values, callbacks, RNGs) under the names the file format has always used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from declarative_train import checkpoint
from declarative_train.checkpoint import ModuleState, OptimizerState, RNGState, Stateful, StateGroup
from declarative_train.engine.context import CheckpointWeights
from declarative_train.engine.state import LoopState
from declarative_train.errors import CheckpointError

log = logging.getLogger(__name__)

#: How errors name the parts whose key alone would say little.
LABELS = {"state_dict": "model", "precision": "GradScaler"}


class TrainingState:
    """The parts of one executor's training state, built once its optimizer exists.

    Args:
        model: the task (unwrapped from DDP/compile wrappers).
        optimizer / scheduler / precision: as the executor built them (scheduler may be ``None``).
        loop: the loop's counters and metric values.
        device: where restored loop tensors go.
        sampler: the resumable train sampler, if the train loader uses one.
        callbacks: callbacks by their config name.
        extras: plain values stored as they are (the run layer adds the resolved config).
    """

    def __init__(
        self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, precision: Stateful,
        loop: LoopState, device: torch.device, sampler: Stateful | None, callbacks: Mapping[str, Any],
        extras: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.callbacks = _CallbackStates(callbacks)
        self.extras = extras
        self.parts: dict[str, Stateful | None] = {
            "state_dict": _ModelWeights(model, [cb for cb in callbacks.values() if isinstance(cb, CheckpointWeights)]),
            "optimizer": OptimizerState(optimizer),
            "scheduler": scheduler,
            "precision": precision,
            "loop": _LoopPosition(loop, device),
            "sampler": sampler,
            "metrics": _MetricValues(loop),
            "callbacks": self.callbacks,
            "rng": RNGState(),  # last: nothing may draw random numbers after it is restored
        }

    def collect(self) -> dict[str, Any]:
        """The complete training state as a plain dict (the checkpoint's content)."""
        extras = {"optimizer_class": type(self.optimizer).__name__,
                  "callback_classes": self.callbacks.classes(), **self.extras}
        return checkpoint.collect(self.parts, extras)

    def restore(self, path: str) -> None:
        """Restore every part from the checkpoint at ``path``; nothing changes if it does not fit."""
        saved = checkpoint.read(path, for_resume=True)
        saved_class = saved.get("optimizer_class")
        if saved_class is not None and saved_class != type(self.optimizer).__name__:
            raise CheckpointError(f"checkpoint {path} does not fit the optimizer: it was saved with "
                                  f"{saved_class}, this run uses {type(self.optimizer).__name__}")
        self.callbacks.warn_unmatched(saved.get("callbacks") or {}, saved.get("callback_classes") or {}, path)
        checkpoint.restore(self.parts, saved, path, LABELS)


def load_weights(model: torch.nn.Module, path: str) -> dict[str, Any]:
    """Load only the weights of the checkpoint at ``path`` into ``model``; return the checkpoint."""
    saved = checkpoint.read(path)
    checkpoint.restore({"state_dict": ModuleState(model)}, saved, path, LABELS)
    return saved


class _ModelWeights(ModuleState):
    """The model's weights as checkpoints store them: chosen by weight-averaging callbacks, if any."""

    def __init__(self, model: torch.nn.Module, choosers: list[CheckpointWeights]) -> None:
        super().__init__(model)
        self.choosers = choosers

    def state_dict(self) -> dict[str, Any]:
        weights = super().state_dict()
        for chooser in self.choosers:
            weights = chooser.checkpoint_weights(weights)
        return weights


class _LoopPosition:
    """The loop's position (epoch, step, batch, running epoch loss)."""

    def __init__(self, loop: LoopState, device: torch.device) -> None:
        self.loop, self.device = loop, device

    def state_dict(self) -> dict[str, Any]:
        return self.loop.counters()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loop.load_counters(state, self.device)


class _MetricValues:
    """The latest metric values (monitors compare against them after a resume)."""

    def __init__(self, loop: LoopState) -> None:
        self.loop = loop

    def state_dict(self) -> dict[str, float]:
        return dict(self.loop.metrics)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.loop.metrics.update(state)


class _CallbackStates(StateGroup):
    """Every callback's state, keyed by the callback's name in the config."""

    def __init__(self, callbacks: Mapping[str, Any]) -> None:
        super().__init__({name: cb for name, cb in callbacks.items() if isinstance(cb, Stateful)}, "callback")

    def classes(self) -> dict[str, str]:
        """Name -> class name, stored beside the states to recognise a renamed callback."""
        return {name: type(cb).__name__ for name, cb in self.members.items()}

    def warn_unmatched(self, saved: Mapping[str, Any], saved_classes: Mapping[str, str], path: str) -> None:
        """Warn about saved callback states that no callback of this run takes, naming a likely rename."""
        for name in sorted(set(saved) - set(self.members)):
            if not saved[name]:
                continue  # nothing was lost
            kind = saved_classes.get(name)
            renamed = [own for own, cb in self.members.items()
                       if own not in saved and kind is not None and type(cb).__name__ == kind]
            what = f"callback {name!r}" + (f" ({kind})" if kind else "")
            hint = (f"; this run's {renamed[0]!r} is a {kind} too and starts fresh: if it was renamed, give "
                    f"it the old name {name!r} again to restore its state") if renamed else ""
            log.warning("checkpoint %s holds the state of %s, which this run does not have%s", path, what, hint)
