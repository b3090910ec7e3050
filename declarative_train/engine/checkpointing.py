"""What a checkpoint holds, and saving/restoring it for an executor.

A checkpoint is a plain dict of tensors and Python builtins, so it loads with
``torch.load(weights_only=True)``: a checkpoint from someone else cannot run code. The file
itself (atomic writes, integrity footer, verified reads) is ``ckpt_file``'s job.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from declarative_train.engine import ckpt_file
from declarative_train.engine.ckpt_file import CheckpointError
from declarative_train.utils.move import map_tensors

if TYPE_CHECKING:
    from declarative_train.engine.executor import Executor

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "collect", "load_weights", "read", "restore", "save"]

log = logging.getLogger(__name__)

FORMAT = "declarative_train.checkpoint"
FORMAT_VERSION = 2  # 2: sealed files (integrity footer), mid-epoch position
#: Entries :func:`restore` needs (a weights-only file has just ``state_dict``).
RESUME_KEYS = ("state_dict", "optimizer", "loop", "rng")


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
        "optimizer_class": type(executor.optimizer).__name__,
        "scheduler": executor.scheduler.state_dict() if executor.scheduler is not None else None,
        "precision": executor.precision.state_dict(),
        "loop": executor.state.counters(),
        "sampler": executor.train_sampler.state_dict() if executor.train_sampler is not None else None,
        "metrics": dict(executor.state.metrics),
        "callbacks": {name: cb.state_dict() for name, cb in executor.callbacks.items() if hasattr(cb, "state_dict")},
        "rng": rng_states(),
        **executor.checkpoint_extras,
    }


def save(executor: Executor, paths: Sequence[str], *, background: bool = False,
         then: Callable[[], None] | None = None, on_failure: Callable[[], None] | None = None) -> None:
    """Serialise the state once and place it atomically at every path, in order (rank zero only).

    ``background``, ``then`` and ``on_failure`` as for :meth:`CheckpointWriter.write
    <declarative_train.engine.ckpt_writer.CheckpointWriter.write>`.
    """
    if not executor.distribution.is_global_zero or not paths:
        return
    state = executor.accelerator.checkpoint_state(collect(executor))
    executor.checkpoint_writer.write(state, paths, background=background, then=then, on_failure=on_failure)


def read(path: str, *, for_resume: bool = False) -> dict[str, Any]:
    """Verify and load a checkpoint file; raise :class:`CheckpointError` naming the file on failure.

    Tensors are mapped from the file (copy what you keep). ``for_resume`` also requires the
    training state (optimizer, loop position, RNGs), not only the weights.
    """
    checkpoint = ckpt_file.read(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} was not written by declarative_train")
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version} (declarative_train "
            f"{checkpoint.get('package_version', '?')}); this version reads format {FORMAT_VERSION}"
        )
    missing = [key for key in (RESUME_KEYS if for_resume else ("state_dict",)) if key not in checkpoint]
    if missing:
        raise CheckpointError(f"checkpoint {path} cannot be resumed from: it lacks {', '.join(missing)}")
    return checkpoint


def load_weights(executor: Executor, path: str) -> dict[str, Any]:
    """Load only the model weights of ``path`` into the executor's task; return the checkpoint."""
    checkpoint = read(path)
    _load_model_state(executor, checkpoint["state_dict"], path)
    return checkpoint


def restore(executor: Executor, path: str) -> None:
    """Restore model, optimizer, scheduler, scaler, position, callbacks and RNGs from ``path``.

    The model and the optimizer are checked against the checkpoint before either changes; a part
    that does not fit raises :class:`CheckpointError` naming the file and the part.
    """
    checkpoint = read(path, for_resume=True)
    # Tensors kept beyond this call are copied out of the file mapping.
    checkpoint = {k: v if k == "state_dict" else map_tensors(v, torch.clone) for k, v in checkpoint.items()}
    optimizer = executor.optimizer
    assert optimizer is not None
    _check_model_state(executor, checkpoint["state_dict"], path)
    _check_optimizer_state(optimizer, checkpoint, path)
    _unwrapped(executor.task).load_state_dict(checkpoint["state_dict"])
    with _naming_errors(path, "optimizer"):
        optimizer.load_state_dict(checkpoint["optimizer"])
    if executor.scheduler is not None and checkpoint.get("scheduler"):
        with _naming_errors(path, "scheduler"):
            executor.scheduler.load_state_dict(checkpoint["scheduler"])
    with _naming_errors(path, "GradScaler"):
        executor.precision.load_state_dict(checkpoint.get("precision") or {})
    executor.state.load_counters(checkpoint["loop"], executor.accelerator.device)
    if executor.train_sampler is not None and checkpoint.get("sampler"):
        _restore_sampler(executor.train_sampler, checkpoint["sampler"], path)
    executor.state.metrics.update(checkpoint.get("metrics", {}))
    for name, state in checkpoint.get("callbacks", {}).items():
        callback = executor.callbacks.get(name)
        if callback is not None and hasattr(callback, "load_state_dict"):
            with _naming_errors(path, f"callback {name!r}"):
                callback.load_state_dict(state)
    set_rng_states(checkpoint["rng"])


def _check_optimizer_state(optimizer: torch.optim.Optimizer, checkpoint: dict[str, Any], path: str) -> None:
    saved_class = checkpoint.get("optimizer_class")
    if saved_class is not None and saved_class != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint {path} does not fit the optimizer: it was saved with "
                              f"{saved_class}, this run uses {type(optimizer).__name__}")
    own = [len(g["params"]) for g in optimizer.param_groups]
    saved = [len(g["params"]) for g in checkpoint["optimizer"]["param_groups"]]
    if own != saved:
        raise CheckpointError(f"checkpoint {path} does not fit the optimizer: parameter groups of "
                              f"{saved} parameters, the optimizer has {own}")


@contextlib.contextmanager
def _naming_errors(path: str, part: str) -> Iterator[None]:
    """Re-raise a load error of ``part`` as a :class:`CheckpointError` naming the file."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the {part}: {type(exc).__name__}: {exc}") from None


def _restore_sampler(sampler: Any, state: dict[str, Any], path: str) -> None:
    if state.get("num_samples") != sampler.num_samples:
        log.warning("checkpoint %s was saved for %s training samples, this data has %d: the resumed "
                    "epoch will not continue the same order", path, state.get("num_samples"), sampler.num_samples)
    sampler.load_state_dict(state)


def _load_model_state(executor: Executor, state_dict: dict[str, Any], path: str) -> None:
    _check_model_state(executor, state_dict, path)
    _unwrapped(executor.task).load_state_dict(state_dict)


def _check_model_state(executor: Executor, state_dict: dict[str, Any], path: str) -> None:
    own = _unwrapped(executor.task).state_dict()
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


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The task inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


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
