"""An exponential moving average (EMA) of the weights, evaluated, tested and checkpointed."""

from __future__ import annotations

from typing import Any

import torch

from declarative_train.callbacks.averaging import AveragedParameters
from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, TrainingContext, unwrapped
from declarative_train.errors import ArgumentError


class EMA(Callback):
    """Keeps ``ema = decay * ema + (1 - decay) * weights`` every ``update_every`` optimizer steps.

    The average starts from the weights at the start of fit and is updated after the optimizer
    step of every ``update_every``-th global step, with ``torch._foreach_lerp_`` on the model's
    device (no host sync). Only floating-point parameters are averaged; buffers (BatchNorm running
    statistics) are not: the averaged model uses the model's current buffers (copied, as
    Lightning's and timm's EMA do).

    Which weights are used where:

    * ``use_for_eval``: validation runs with the averaged weights (swapped in at the start of
      each validation, swapped back after it), so ``val/*`` metrics, the best checkpoint and early
      stopping judge the average; and at the end of fit the averaged weights are put into the
      model, so a test of the in-memory model (no checkpoint) tests the average.
    * ``use_for_checkpoint``: checkpoint files store the averaged weights as the model's weights
      (``state_dict``), so the test of the best checkpoint, ``dtrain-eval``, ``dtrain-predict`` and
      ``dtrain-export`` use them; the training weights are kept in this callback's state, and a
      resume puts them back, so it continues exactly. Without it the files hold the training
      weights and the average lives in this callback's state only.

    Under ``strategy=fsdp`` each rank averages its own shards of the parameters (the same
    updates on local tensors, no communication); sharded checkpoint folders hold the average
    sharded like the weights, files of full weights hold it gathered.

    Args:
        decay: weight of the old average, in (0, 1); 0.999 averages over roughly the last 1000
            updates.
        update_every: update after every N-th optimizer step (counted by the global step).
        warmup: use ``min(decay, (1 + n) / (10 + n))`` for the n-th update (0-based; TensorFlow's
            ``num_updates`` rule), so the random initial weights leave the average quickly;
            ``False``: ``decay`` from the first update.
        use_for_eval: validate with the averaged weights and end fit with them in the model.
        use_for_checkpoint: store the averaged weights as the checkpoint's model weights.
    """

    def __init__(self, decay: float = 0.999, update_every: int = 1, warmup: bool = True,
                 use_for_eval: bool = True, use_for_checkpoint: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ArgumentError("EMA", "decay", f"must be in (0, 1) (exclusive), got {decay}")
        if update_every < 1:
            raise ArgumentError("EMA", "update_every", f"must be >= 1, got {update_every}")
        self.decay = float(decay)
        self.update_every = update_every
        self.warmup = warmup
        self.use_for_eval = use_for_eval
        self.use_for_checkpoint = use_for_checkpoint
        self.num_updates = 0
        self.averaged: list[torch.Tensor] | None = None
        self._slots: AveragedParameters | None = None
        self._live: list[torch.Tensor] = []
        self._pending: dict[str, Any] | None = None
        self._swapped_for_eval = False
        self._whole = True

    def attach(self, context: TrainingContext) -> None:
        self._slots = AveragedParameters(unwrapped(context.task))
        # FSDP may re-point its shards (a resume); their local views are taken at every update instead.
        self._live = [] if self._slots.sharded else self._slots.detached()
        self._whole = not context.distribution.shards_checkpoints
        if self._pending is not None:
            self.load_state_dict(self._pending)
        self.listen(context, Event.FIT_START, self._start)
        self.listen(context, Event.STEP_END, self._update, every=self.update_every)
        if self.use_for_eval:
            self.listen(context, Event.EVAL_START, self._swap_in_for_eval)
            self.listen(context, Event.EVAL_END, self._swap_back)
            self.listen(context, Event.FIT_END, self._end)
        self.listen(context, Event.EXCEPTION, self._swap_back)

    @property
    def slots(self) -> AveragedParameters:
        """The averaged parameters of the attached model."""
        assert self._slots is not None, "attach() first"
        return self._slots

    def decay_at(self, update: int) -> float:
        """The decay of the ``update``-th update (0-based)."""
        return min(self.decay, (1 + update) / (10 + update)) if self.warmup else self.decay

    def _start(self, context: TrainingContext) -> None:
        self.slots.swap_out()  # a second fit continues from the training weights
        if self.averaged is None:
            self.averaged = self.slots.clones()

    @torch.no_grad()
    def _update(self, context: TrainingContext) -> None:
        if self.averaged is None:
            return
        live = self._live or self.slots.detached()
        torch._foreach_lerp_(self.averaged, live, 1.0 - self.decay_at(self.num_updates))
        self.num_updates += 1

    def _swap_in_for_eval(self, context: TrainingContext) -> None:
        if context.state.stage == "val" and self.averaged is not None and not self.slots.swapped:
            self.slots.swap_in(self.averaged)
            self._swapped_for_eval = True

    def _swap_back(self, context: TrainingContext) -> None:
        if self._swapped_for_eval:
            self.slots.swap_out()
            self._swapped_for_eval = False

    def _end(self, context: TrainingContext) -> None:
        if self.averaged is not None:
            self.slots.swap_in(self.averaged)

    def checkpoint_weights(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The averaged weights (``use_for_checkpoint``), else the training weights.

        Under FSDP every rank calls this (``weights`` is empty on ranks that do not write): a
        file of full weights gathers the averaged shards from every rank.
        """
        if self._slots is None or self.averaged is None:
            return weights
        if self.use_for_checkpoint:
            chosen = self.averaged
        elif self._slots.swapped:
            chosen = self._slots.training_values()
        else:
            return weights
        return self._slots.replace_in(weights, self._slots.for_checkpoint(chosen, whole=self._whole))

    def state_dict(self) -> dict[str, Any]:
        if self._slots is None or self.averaged is None:
            return {"num_updates": self.num_updates, "averaged": None, "training_weights": None}
        slots = self._slots
        training = (slots.by_name(slots.for_checkpoint(slots.training_values(), whole=self._whole))
                    if self.use_for_checkpoint else None)
        return {"num_updates": self.num_updates,
                "averaged": slots.by_name(slots.for_checkpoint(self.averaged, whole=self._whole)),
                "training_weights": training}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._slots is None:
            self._pending = state  # applied at attach, once the model is known
            return
        self._pending = None
        self.num_updates = int(state["num_updates"])
        self.averaged = self._slots.from_names(state["averaged"]) if state.get("averaged") is not None else None
        if state.get("training_weights") is not None:
            # The file's model weights were the average: put the training weights back.
            self._slots.swapped = False
            self._slots.copy_from(self._slots.from_names(state["training_weights"]))
