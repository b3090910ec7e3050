"""What a checkpoint holds: named :class:`Stateful` parts, collected into one plain dict.

The caller (the executor) hands over a mapping of parts (``{"state_dict": ModuleState(model),
"optimizer": OptimizerState(opt), ..., "rng": RNGState()}``); each part's ``state_dict()`` is
stored under its name, next to a format header and plain extra values. Restoring checks every
part that can check itself (model keys and shapes, optimizer groups) before any part changes,
then loads the parts in order, naming the file and the part in any error. A checkpoint is a
plain dict of tensors and Python builtins, so it loads with ``torch.load(weights_only=True)``:
the file cannot run code. The file itself (atomic writes, integrity footer, verified reads) is
:mod:`declarative_train.checkpoint.file`'s job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch

from declarative_train._version import __version__
from declarative_train.checkpoint import file as ckpt_file
from declarative_train.errors import CheckpointError
from declarative_train.utils.tree import map_tensors

FORMAT = "declarative_train.checkpoint"
FORMAT_VERSION = 2  # 2: sealed files (integrity footer), mid-epoch position
#: Parts a checkpoint needs to resume training (a weights-only file has just ``state_dict``).
RESUME_KEYS = ("state_dict", "optimizer", "loop", "rng")


@runtime_checkable
class Stateful(Protocol):
    """Anything whose state a checkpoint can hold: modules, optimizers, schedulers, callbacks."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


class ModuleState:
    """A module's weights; :meth:`check` compares keys and shapes before anything is loaded."""

    #: ``load_state_dict`` copies into the parameters: the loaded tensors may stay file-mapped.
    copies_on_load = True

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)

    def check(self, state: dict[str, Any]) -> str | None:
        """Missing and unexpected keys and shape mismatches, or ``None`` when ``state`` fits."""
        own = self.module.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in sorted(set(own) & set(state))
            if hasattr(state[k], "shape") and state[k].shape != own[k].shape
        ]
        parts = []
        if missing:
            parts.append(f"missing keys {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_preview(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_preview(shapes)}")
        return "; ".join(parts) or None


class OptimizerState:
    """An optimizer; :meth:`check` compares the parameter groups before anything is loaded."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)

    def check(self, state: dict[str, Any]) -> str | None:
        """A mismatch of parameter groups, or ``None``."""
        own = [len(g["params"]) for g in self.optimizer.param_groups]
        saved = [len(g["params"]) for g in state["param_groups"]]
        if own != saved:
            return f"parameter groups of {saved} parameters, the optimizer has {own}"
        return None


class StateGroup:
    """Named members stored together as ``{name: member.state_dict()}`` (callbacks by config name).

    Restoring loads each saved member that is still present; errors name the member
    (``member_label`` and its name).
    """

    def __init__(self, members: Mapping[str, Stateful], member_label: str) -> None:
        self.members = dict(members)
        self.member_label = member_label

    def state_dict(self) -> dict[str, Any]:
        return {name: member.state_dict() for name, member in self.members.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, member_state in state.items():
            if name in self.members:
                self.members[name].load_state_dict(member_state)


def collect(parts: Mapping[str, Stateful | None], extras: Mapping[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
    """The checkpoint dict: format header, ``state_dict()`` of every part (``None`` for absent ones), extras."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        **{name: part.state_dict() if part is not None else None for name, part in parts.items()},
        **extras,
    }


def read(path: str, *, for_resume: bool = False) -> dict[str, Any]:
    """Verify and load a checkpoint file; raise :class:`CheckpointError` naming the file on failure.

    Tensors are mapped from the file (copy what you keep). ``for_resume`` also requires the
    training state (optimizer, loop position, RNGs), not only the weights. (The package's
    ``checkpoint.read`` also takes sharded folders: ``sharded_consolidate.read_any``.)
    """
    checkpoint = ckpt_file.read(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} was not written by declarative_train")
    check_header(checkpoint, path, for_resume=for_resume)
    return checkpoint


def check_header(checkpoint: Mapping[str, Any], path: str, *, for_resume: bool = False) -> None:
    """Raise :class:`CheckpointError` unless ``checkpoint`` is ours, of this format version, and complete.

    Complete: the weights, and with ``for_resume`` the whole training state (``RESUME_KEYS``).
    """
    if checkpoint.get("format") != FORMAT:
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


def restore(
    parts: Mapping[str, Stateful | None], checkpoint: Mapping[str, Any], path: str,
    labels: Mapping[str, str] = {},  # noqa: B006
) -> None:
    """Load each part from ``checkpoint[name]``, in the order of ``parts``.

    Parts that are ``None``, and entries the checkpoint lacks or holds as ``None``, are skipped.
    Every part with a ``check(state)`` method is checked first, so a checkpoint that does not fit
    changes nothing. Errors are :class:`CheckpointError` naming ``path`` and the part
    (``labels[name]``, else the name). Tensors are copied out of the file mapping, except for
    parts that copy them themselves (``copies_on_load``).
    """
    present = {name: part for name, part in parts.items()
               if part is not None and checkpoint.get(name) is not None}
    for name, part in present.items():
        check = getattr(part, "check", None)
        problem = check(checkpoint[name]) if check is not None else None
        if problem:
            raise CheckpointError(f"checkpoint {path} does not fit the {labels.get(name, name)}: {problem}")
    for name, part in present.items():
        state = checkpoint[name]
        if not getattr(part, "copies_on_load", False):
            state = map_tensors(state, torch.clone)
        if isinstance(part, StateGroup):
            for member, member_state in state.items():
                if member in part.members:
                    with naming_errors(path, f"{part.member_label} {member!r}"):
                        part.members[member].load_state_dict(member_state)
        else:
            with naming_errors(path, labels.get(name, name)):
                part.load_state_dict(state)


@contextlib.contextmanager
def naming_errors(path: str, part: str) -> Iterator[None]:
    """Re-raise a load error of ``part`` as a :class:`CheckpointError` naming the file."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the {part}: {type(exc).__name__}: {exc}") from None


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"
