"""What a checkpoint holds, and saving/restoring it for an executor.

A checkpoint is a plain dict of tensors and Python builtins, so it loads with
``torch.load(weights_only=True)``: a checkpoint from someone else cannot run code.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from declarative_train.utils.io import atomic_link, atomic_write_bytes, fsync_dir, serialize

if TYPE_CHECKING:
    from declarative_train.engine.executor import Executor

FORMAT = "declarative_train.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, corrupt, or for another model."""


def collect(executor: Executor) -> dict[str, Any]:
    """The complete training state of ``executor`` as a plain dict."""
    from declarative_train import __version__

    assert executor.optimizer is not None
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "state_dict": _unwrapped(executor.task).state_dict(),
        "optimizer": executor.optimizer.state_dict(),
        "scheduler": executor.scheduler.state_dict() if executor.scheduler is not None else None,
        "precision": executor.precision.state_dict(),
        "loop": executor.state.counters(),
        "metrics": dict(executor.state.metrics),
        "callbacks": {name: cb.state_dict() for name, cb in executor.callbacks.items() if hasattr(cb, "state_dict")},
        "rng": rng_states(),
        **executor.checkpoint_extras,
    }


def save(executor: Executor, paths: Sequence[str]) -> None:
    """Serialise the state once, write it atomically to the first path and hard-link the others.

    Rank zero only. The folders are fsynced once each, after all renames.
    """
    if not executor.distribution.is_global_zero or not paths:
        return
    first, *others = paths
    state = executor.accelerator.checkpoint_state(collect(executor))
    atomic_write_bytes(first, serialize(state), sync_dir=False)
    for path in others:
        atomic_link(first, path, sync_dir=False)
    for folder in {Path(p).parent for p in paths}:
        fsync_dir(folder)


def read(path: str) -> dict[str, Any]:
    """Load a checkpoint file safely; raise :class:`CheckpointError` naming the file on failure."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except Exception as exc:  # torch raises many kinds for corrupt or unsafe files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated, corrupt or unsafe): {reason}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} was not written by declarative_train")
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {checkpoint['format_version']}; "
            f"this version of declarative_train reads up to {FORMAT_VERSION}"
        )
    return checkpoint


def load_weights(executor: Executor, path: str) -> dict[str, Any]:
    """Load only the model weights of ``path`` into the executor's task; return the checkpoint."""
    checkpoint = read(path)
    _load_model_state(executor, checkpoint["state_dict"], path)
    return checkpoint


def restore(executor: Executor, path: str) -> None:
    """Restore model, optimizer, scheduler, scaler, counters, callbacks and RNGs from ``path``."""
    checkpoint = load_weights(executor, path)
    assert executor.optimizer is not None
    executor.optimizer.load_state_dict(checkpoint["optimizer"])
    if executor.scheduler is not None and checkpoint.get("scheduler"):
        executor.scheduler.load_state_dict(checkpoint["scheduler"])
    executor.precision.load_state_dict(checkpoint.get("precision") or {})
    loop = checkpoint["loop"]
    executor.state.epoch = loop["epoch"]
    executor.state.global_step = loop["global_step"]
    executor.state.batch_idx = loop["batch_idx"]
    if executor.state.batch_idx >= executor.state.num_train_batches:  # saved at an epoch's end
        executor.state.epoch += 1
        executor.state.batch_idx = 0
    executor.state.metrics.update(checkpoint.get("metrics", {}))
    for name, state in checkpoint.get("callbacks", {}).items():
        callback = executor.callbacks.get(name)
        if callback is not None and hasattr(callback, "load_state_dict"):
            callback.load_state_dict(state)
    set_rng_states(checkpoint["rng"])


def _load_model_state(executor: Executor, state_dict: dict[str, Any], path: str) -> None:
    model = _unwrapped(executor.task)
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if hasattr(state_dict[k], "shape") and state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_preview(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_preview(shapes)}")
        raise CheckpointError(f"checkpoint {path} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state_dict)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The task inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def rng_states() -> dict[str, Any]:
    """Every RNG the loop uses: python, numpy, torch CPU, and CUDA where present."""
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
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
