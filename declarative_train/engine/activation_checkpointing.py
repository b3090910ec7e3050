"""Activation checkpointing: chosen submodules recompute their forward in backward.

``trainer.activation_checkpointing=[Block]`` trades compute for memory: the activations inside
every ``Block`` are not kept for backward but recomputed from the block's inputs, with torch's
non-reentrant checkpoint (:func:`torch.utils.checkpoint.checkpoint`, ``use_reentrant=False``),
which restores the RNG state so dropout draws the same mask again.

Only the module's ``forward`` is replaced (bound to the module), never the module
itself: names of parameters and ``state_dict`` keys, the module's class and the module tree stay
as they were, so checkpoints load into runs with or without the setting, and what wraps the
model next (``torch.compile``, DDP, FSDP's ``fully_shard`` of the same classes) sees the same
model. Module hooks (FSDP's all-gather) run outside the recomputed region, as with torch's
``checkpoint_wrapper``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from declarative_train.errors import SettingsError
from declarative_train.utils.text import did_you_mean

log = logging.getLogger(__name__)

SETTING = "activation_checkpointing"


def apply_activation_checkpointing(module: torch.nn.Module, class_names: Sequence[str]) -> int:
    """Recompute every submodule of ``module`` whose class is named in ``class_names`` in backward.

    Returns how many submodules are checkpointed (applying it again changes nothing). Raises
    :class:`~declarative_train.errors.SettingsError` (a ``ValueError``) when a name is not the
    class of any submodule, with the closest class name the model has.
    """
    check_class_names(module, class_names)
    wanted = set(class_names)
    chosen = [sub for sub in module.modules() if type(sub).__name__ in wanted]
    for sub in chosen:
        if not is_checkpointed(sub):
            sub.forward = partial(_checkpointed_forward, sub)
    counts = Counter(type(sub).__name__ for sub in chosen)
    log.info("activation checkpointing: %d modules (%s)", len(chosen),
             ", ".join(f"{count} {name}" for name, count in sorted(counts.items())))
    return len(chosen)


def check_class_names(module: torch.nn.Module, class_names: Sequence[str]) -> None:
    """Raise :class:`SettingsError` naming the first of ``class_names`` no submodule of ``module`` has."""
    present = sorted({type(sub).__name__ for sub in module.modules()})
    for name in class_names:
        if name not in present:
            raise SettingsError(SETTING, (
                f"no submodule of {type(module).__name__} is a {name!r}.{did_you_mean(name, present)} "
                f"Module classes: {', '.join(present)}"))


def is_checkpointed(module: torch.nn.Module) -> bool:
    """Whether ``module``'s forward is recomputed in backward (by :func:`apply_activation_checkpointing`)."""
    forward = module.__dict__.get("forward")
    return isinstance(forward, partial) and forward.func is _checkpointed_forward


def _checkpointed_forward(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
    # Bound by functools.partial (not a closure, not a bound method): copy.deepcopy (EMA, SWA) binds it
    # to the copy, and pickle (spawned processes, torch.save of a module) can rebuild it.
    forward = type(self).forward
    if not torch.is_grad_enabled():  # evaluation: nothing is saved for backward, nothing to recompute
        return forward(self, *args, **kwargs)
    return checkpoint(forward, self, *args, use_reentrant=False, **kwargs)
