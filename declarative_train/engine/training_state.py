"""What the executor checkpoints, as named parts, and the checks around restoring them.

The checkpoint package stores and restores any mapping of ``Stateful`` parts; this module says
which parts a training run consists of (model, optimizer, scheduler, GradScaler, loop position,
sampler, metric values, callbacks, RNGs) under the names the file format has always used.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch

from declarative_train import checkpoint
from declarative_train.checkpoint import ModuleState, OptimizerState, RNGState, Stateful, StateGroup
from declarative_train.distributed import Distribution
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
        distribution: takes and loads the model's and optimizer's state (under FSDP this rank's
            shards, or the full state gathered to rank 0) and gathers every rank's RNG states;
            with several ranks :meth:`collect` runs on every rank.
    """

    def __init__(
        self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, precision: Stateful,
        loop: LoopState, device: torch.device, sampler: Stateful | None, callbacks: Mapping[str, Any],
        extras: Mapping[str, Any], distribution: Distribution | None = None,
    ) -> None:
        distribution = distribution or Distribution()
        self.distribution = distribution
        self.model = model
        self.optimizer = optimizer
        self.callbacks = _CallbackStates(callbacks)
        self.extras = extras
        self.parts: dict[str, Stateful | None] = {
            "state_dict": _ModelWeights(model, distribution,
                                        [cb for cb in callbacks.values() if isinstance(cb, CheckpointWeights)]),
            "optimizer": _OptimizerState(optimizer, model, distribution),
            "scheduler": scheduler,
            "precision": precision,
            "loop": _LoopPosition(loop, device, distribution),
            "sampler": sampler,
            "metrics": _MetricValues(loop),
            "callbacks": self.callbacks,
            "rng": _RankRNG(distribution),  # last: nothing may draw random numbers after it is restored
        }

    def collect(self) -> dict[str, Any]:
        """The complete training state as a plain dict (the checkpoint's content)."""
        extras = {"optimizer_class": type(self.optimizer).__name__,
                  "callback_classes": self.callbacks.classes(), **self.extras}
        return checkpoint.collect(self.parts, extras)

    def restore(self, path: str) -> None:
        """Restore every part from the checkpoint at ``path``; nothing changes if it does not fit."""
        saved = read_checkpoint(path, self.distribution, self.collect, for_resume=True)
        saved_class = saved.get("optimizer_class")
        if saved_class is not None and saved_class != type(self.optimizer).__name__:
            raise CheckpointError(f"checkpoint {path} does not fit the optimizer: it was saved with "
                                  f"{saved_class}, this run uses {type(self.optimizer).__name__}")
        self.callbacks.warn_unmatched(saved.get("callbacks") or {}, saved.get("callback_classes") or {}, path)
        checkpoint.restore(self.parts, saved, path, LABELS)


def load_weights(model: torch.nn.Module, path: str, distribution: Distribution | None = None) -> dict[str, Any]:
    """Load only the weights of the checkpoint at ``path`` into ``model``; return the checkpoint."""
    weights = _FullModuleState(model, distribution or Distribution())
    saved = read_checkpoint(path, weights.distribution, lambda: {"state_dict": weights.state_dict()},
                            template_parts_only=True)
    checkpoint.restore({"state_dict": weights}, saved, path, LABELS)
    return saved


def read_checkpoint(path: str, distribution: Distribution, template: Callable[[], dict[str, Any]], *,
                    for_resume: bool = False, template_parts_only: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path`` as the parts load it.

    A sharded folder, under a distribution that shards checkpoints, is loaded into this rank's
    shards: into ``template()``'s tensors (resharded to this run's ranks by DCP; every rank calls
    this; ``template_parts_only``: the parts ``template`` lacks are not read). Anything else is read whole
    (:func:`declarative_train.checkpoint.read`: a file, or a folder gathered into this process).
    """
    if distribution.shards_checkpoints and checkpoint.is_sharded(path):
        # Imported here: DCP takes a second to import.
        from declarative_train.checkpoint.sharded import load_sharded

        saved = load_sharded(path, template(), only_given=template_parts_only)
        checkpoint.check_header(saved, path, for_resume=for_resume)
        return saved
    return checkpoint.read(path, for_resume=for_resume)


class _FullModuleState(ModuleState):
    """A module's full weights, taken and loaded through the distribution (which gathers shards)."""

    def __init__(self, model: torch.nn.Module, distribution: Distribution) -> None:
        super().__init__(model)
        self.distribution = distribution

    def state_dict(self) -> dict[str, Any]:
        return self.distribution.model_state_dict(self.module)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.distribution.load_model_state_dict(self.module, state)


class _ModelWeights(_FullModuleState):
    """The model's weights as checkpoints store them: chosen by weight-averaging callbacks, if any."""

    def __init__(self, model: torch.nn.Module, distribution: Distribution, choosers: list[CheckpointWeights]) -> None:
        super().__init__(model, distribution)
        self.choosers = choosers

    def state_dict(self) -> dict[str, Any]:
        weights = super().state_dict()  # empty on a rank that takes part in gathering but does not write
        for chooser in self.choosers:  # on every rank: a chooser may gather too (FSDP's averaged shards)
            weights = chooser.checkpoint_weights(weights)
        return weights


class _OptimizerState(OptimizerState):
    """The optimizer's full state in ``optimizer.state_dict()``'s layout, through the distribution."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module, distribution: Distribution) -> None:
        super().__init__(optimizer)
        self.model, self.distribution = model, distribution

    def state_dict(self) -> dict[str, Any]:
        return self.distribution.optimizer_state_dict(self.model, self.optimizer)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.distribution.load_optimizer_state_dict(self.model, self.optimizer, state)


class _RankRNG:
    """The RNG states: this process's, and with several ranks every rank's (each resumes its own streams).

    The top-level states are the taking rank's (rank 0's in a file), as a single process stores
    them; ``ranks`` lists every rank's. A run on as many ranks restores its own; on another
    number of ranks, every rank continues the top-level streams (as before ``ranks`` existed).
    """

    def __init__(self, distribution: Distribution) -> None:
        self.distribution = distribution
        self.own = RNGState()

    def state_dict(self) -> dict[str, Any]:
        own = self.own.state_dict()
        if self.distribution.world_size == 1:
            return own
        # A collective: every rank takes state. Sent serialised: torch 2.13's all_gather_object does not
        # rebuild these tensors (a numpy-backed storage) on the receiving side.
        gathered = self.distribution.all_gather_object(_serialised(own))
        return {**own, "ranks": [torch.load(io.BytesIO(data), weights_only=True) for data in gathered]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state.get("ranks")
        world_size = self.distribution.world_size
        if ranks is not None and len(ranks) == world_size:
            self.own.load_state_dict(ranks[self.distribution.rank])
            return
        if ranks is not None or world_size > 1:
            log.warning("the checkpoint holds the RNG states of %s; this run has %d: every rank continues rank "
                        "0's random streams (dropout masks and augmentations differ from an uninterrupted run)",
                        f"{len(ranks)} ranks" if ranks is not None else "one rank", world_size)
        # ranks[0] is rank 0's as a whole (a sharded folder's top-level tensors may be another rank's copy).
        self.own.load_state_dict(ranks[0] if ranks else {key: value for key, value in state.items() if key != "ranks"})


def _serialised(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class _LoopPosition:
    """The loop's position (epoch, step, batch, running epoch loss).

    The running epoch loss is each rank's own sum. With several ranks ``epoch_loss_sum_ranks``
    lists every rank's (a run on as many ranks continues its own, so the epoch's mean loss is
    the uninterrupted run's) and ``epoch_loss_sum`` is their mean, which a run on another number
    of ranks continues from on every rank.
    """

    def __init__(self, loop: LoopState, device: torch.device, distribution: Distribution) -> None:
        self.loop, self.device, self.distribution = loop, device, distribution

    def state_dict(self) -> dict[str, Any]:
        counters = self.loop.counters()
        running = counters["epoch_loss_sum"]
        if self.distribution.world_size == 1 or running is None:
            return counters
        sums = [float(s) for s in self.distribution.all_gather_object(float(running))]  # a collective
        return {**counters, "epoch_loss_sum": torch.tensor(sum(sums) / len(sums), dtype=running.dtype),
                "epoch_loss_sum_ranks": sums}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sums, running = state.get("epoch_loss_sum_ranks"), state.get("epoch_loss_sum")
        if sums is not None and running is not None and len(sums) == self.distribution.world_size:
            state = {**state, "epoch_loss_sum": torch.tensor(sums[self.distribution.rank], dtype=running.dtype)}
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
