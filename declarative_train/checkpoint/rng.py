"""The random number generators a training loop draws from, as one checkpointable part."""

from __future__ import annotations

import random
import sys
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    """Every RNG the loop uses: python, numpy, torch CPU, and CUDA and XLA where in use."""
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    xla_model = sys.modules.get("torch_xla.core.xla_model")  # only where torch-xla is in use
    if xla_model is not None:
        states["xla"] = int(xla_model.get_rng_state())
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` captured."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    xla_model = sys.modules.get("torch_xla.core.xla_model")
    if "xla" in states and xla_model is not None:
        xla_model.set_rng_state(states["xla"])


class RNGState:
    """The process's RNGs as a :class:`~declarative_train.checkpoint.state.Stateful` part."""

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_states(state)
