"""A sharded checkpoint folder as an ordinary checkpoint: read as one dict, or written as one file.

:func:`read_any` reads a checkpoint file or folder with the checks of
:func:`declarative_train.checkpoint.state.read`, so ``dtrain-eval`` and ``dtrain-predict`` accept
either, with the optimizer turned from the FQN-keyed layout of ``get_optimizer_state_dict`` into
the layout of ``optimizer.state_dict()`` (:func:`plain_optimizer_state`), so a model without FSDP
resumes from a folder. :func:`consolidate` writes a folder as a sealed single file (``dtrain-consolidate``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from declarative_train.checkpoint import file as ckpt_file
from declarative_train.checkpoint import state as ckpt_state
from declarative_train.checkpoint.sharded_folder import is_sharded
from declarative_train.distributed.optimizer_layout import by_index, is_name_keyed
from declarative_train.errors import CheckpointError


def read_any(path: str | os.PathLike[str], *, for_resume: bool = False) -> dict[str, Any]:
    """:func:`~declarative_train.checkpoint.state.read` for a checkpoint file or a sharded folder.

    A folder is read whole into this process, its optimizer state in ``optimizer.state_dict()``'s
    layout (:func:`plain_optimizer_state`): the same content a single file holds.
    """
    if not is_sharded(path):
        return ckpt_state.read(str(path), for_resume=for_resume)
    # Imported here: DCP takes over a second to import, and only folders need it.
    from declarative_train.checkpoint.sharded import read_full

    checkpoint = read_full(path)
    ckpt_state.check_header(checkpoint, str(path), for_resume=for_resume)
    optimizer = checkpoint.get("optimizer")
    if isinstance(optimizer, Mapping) and is_name_keyed(optimizer):
        checkpoint["optimizer"] = plain_optimizer_state(optimizer)
    return checkpoint


def consolidate(folder: str | os.PathLike[str], out_file: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the sharded checkpoint ``folder`` as the sealed single file ``out_file``; return its content.

    The content is :func:`read_any`'s (the optimizer in the plain layout). Runs in one process,
    with or without a process group.
    """
    checkpoint = read_any(folder)
    ckpt_file.write(checkpoint, [out_file])
    return checkpoint


def plain_optimizer_state(fqn_state: Mapping[str, Any]) -> dict[str, Any]:
    """An FQN-keyed optimizer state in the layout of ``optimizer.state_dict()``.

    ``{"state": {fqn: s}, "param_groups": [{"params": [fqn, ...], ...}]}`` becomes
    ``{"state": {i: s}, "param_groups": [{"params": [i, ...], ...}]}``, where ``i`` counts the
    parameters in the order the groups list them (the ids ``load_state_dict`` expects). The
    tensors are shared, not copied.
    """
    listed = {fqn for group in fqn_state["param_groups"] for fqn in group["params"]}
    unknown = sorted(set(fqn_state["state"]) - listed)
    if unknown:
        raise CheckpointError(f"optimizer state for parameters in no parameter group: {unknown[:5]}")
    return by_index(fqn_state)
