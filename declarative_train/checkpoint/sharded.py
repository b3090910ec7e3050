"""Sharded checkpoints: one folder, each rank writing its shards with ``torch.distributed.checkpoint``.

The single-file guarantees hold for folders too. A save is atomic (``sharded_folder``: a temp
folder renamed into place; a crash at any moment leaves the old or the new complete folder),
every file is covered by a manifest checked before anything loads (``sharded_manifest``), and
reading never unpickles anything but tensors and plain values (``sharded_dcp``). Tensors (plain
or DTensor shards, as FSDP2's state dicts hold them) go to DCP, so a folder saved on N ranks loads
on any number of ranks; the plain values (loop counters, sampler, callbacks, RNGs, config) are
rank 0's, in a sealed ``state.ckpt``. Plain tensors count as replicated: one rank's copy is kept.

Folder layout: ``manifest.json``, ``state.ckpt`` (plain values), ``.metadata`` and
``__<rank>_<n>.distcp`` (DCP's).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException

from declarative_train.checkpoint import file as ckpt_file
from declarative_train.checkpoint import sharded_folder as folders
from declarative_train.checkpoint import sharded_manifest as manifest
from declarative_train.checkpoint.sharded_dcp import (
    DigestingWriter,
    SafeLoadPlanner,
    SafeReader,
    graft,
    split_tensors,
    tensor_key,
)
from declarative_train.errors import CheckpointError
from declarative_train.utils.text import first_line

STATE_FILE = "state.ckpt"
#: The temp folder's token when the ranks cannot agree on a fresh one (no ``broadcast_object``).
_FIXED_TOKEN = "0" * 12


def save_sharded(
    state: Mapping[str, Any], folder: str | os.PathLike[str], *, rank: int, barrier: Callable[[], None],
    broadcast_object: Callable[[Any], Any] | None = None, process_group: dist.ProcessGroup | None = None,
) -> None:
    """Save ``state`` as the sharded checkpoint folder ``folder``; every rank calls this.

    ``state`` is this rank's part: DTensors (FSDP2 state dicts), plain tensors and plain Python
    values, nested in dicts, lists and tuples. ``barrier`` waits for every rank;
    ``broadcast_object(obj)`` returns rank 0's ``obj`` on every rank: with it, every rank raises
    when rank 0 fails to prepare or to rename the folder into place; without, only rank 0 does
    (the others return, or wait for the barrier's timeout). Failures while writing reach every
    rank through DCP (over ``process_group``, the default group if ``None``: ``barrier`` and
    ``broadcast_object`` must use the same group). Raises :class:`CheckpointError` naming
    ``folder``; the folder already there is then unchanged.
    """
    target = Path(folder)
    temp = _prepare(target, rank, barrier, broadcast_object)
    skeleton, tensors = split_tensors(dict(state))
    payload = {"format": manifest.SHARDED_FORMAT, "content": skeleton, "tensor_paths": list(tensors)}

    def write_plain_values() -> None:  # on the coordinator (rank 0), after every shard is written
        ckpt_file.write(payload, [temp / STATE_FILE])

    with _reporting(target, "write", cleanup=temp if rank == 0 else None):
        dcp.save({tensor_key(path): tensor for path, tensor in tensors.items()},
                 storage_writer=DigestingWriter(temp, rank, write_plain_values), no_dist=not dist.is_initialized(),
                 process_group=process_group)
    failure = None
    if rank == 0:
        try:
            with _reporting(target, "write", cleanup=temp):
                folders.commit(temp, target)
        except CheckpointError as exc:
            failure = str(exc)
    if broadcast_object is not None:
        failure = broadcast_object(failure)
    else:
        barrier()
    if failure is not None:
        raise CheckpointError(failure)


def _prepare(target: Path, rank: int, barrier: Callable[[], None],
             broadcast_object: Callable[[Any], Any] | None) -> Path:
    """Rank 0 readies a fresh temp folder (after recovering an interrupted save); every rank gets its path."""
    token, failure = _FIXED_TOKEN, None
    if rank == 0:
        try:
            with _reporting(target, "write"):
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.recover_interrupted(target)
                folders.remove_tree(folders.temp_folder(target, token))
                token = folders.new_token() if broadcast_object is not None else token
        except CheckpointError as exc:
            if broadcast_object is None:
                raise  # the other ranks wait at the barrier until it times out
            failure = str(exc)
    if broadcast_object is not None:
        token, failure = broadcast_object((token, failure))
        if failure is not None:
            raise CheckpointError(failure)
    barrier()  # the temp folder is fresh before anyone writes into it
    return folders.temp_folder(target, token)


def load_sharded(folder: str | os.PathLike[str], state: dict[str, Any], *, only_given: bool = False) -> dict[str, Any]:
    """Load the checkpoint ``folder`` into ``state`` in place; every rank calls this.

    Every file is checked against the manifest first, and every tensor of ``state`` against the
    checkpoint (present, same shape): if anything does not fit, :class:`CheckpointError` names
    the file or the keys and nothing is loaded. Then the tensors of ``state`` (DTensors or plain)
    are filled in place by DCP, resharded to however many ranks load, and every other entry of
    ``state`` is replaced by the saved one (tensors the checkpoint holds and ``state`` lacks come
    back as full CPU tensors; with ``only_given``, entries of the top-level parts ``state`` lacks
    are not read and hold ``None`` in place of their tensors). Returns ``state``.
    """
    state.update(_load(Path(folder), state, no_dist=not dist.is_initialized(), only_given=only_given))
    return state


def read_full(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole checkpoint in this one process (no process group): full tensors and plain values.

    The same shape of dict that :func:`declarative_train.checkpoint.file.read` returns for a file.
    """
    return _load(Path(folder), {}, no_dist=True)


def _load(folder: Path, state: Mapping[str, Any], *, no_dist: bool, only_given: bool = False) -> dict[str, Any]:
    path = folders.resolve(folder)
    files = manifest.verify(path)["files"]
    payload = ckpt_file.read(path / STATE_FILE)
    if not isinstance(payload, dict) or payload.get("format") != manifest.SHARDED_FORMAT:
        raise CheckpointError(f"sharded checkpoint {path / STATE_FILE} was not written by declarative_train")
    saved_paths = [tuple(p) for p in payload["tensor_paths"]]
    reader = SafeReader(path, files)
    metadata = reader.read_metadata().state_dict_metadata
    if {tensor_key(p) for p in saved_paths} != set(metadata):
        raise CheckpointError(f"sharded checkpoint {path}: {STATE_FILE} and .metadata list different tensors")
    if only_given:  # e.g. the weights alone: the optimizer's tensors are not read
        saved_paths = [p for p in saved_paths if p and p[0] in state]
    targets = _targets(path, state, saved_paths, metadata)
    with _reporting(path, "load"):
        dcp.load({tensor_key(p): t for p, t in targets.items()}, storage_reader=SafeReader(path, files),
                 planner=SafeLoadPlanner(), no_dist=no_dist)
    return dict(graft(payload["content"], targets))


def _targets(folder: Path, state: Mapping[str, Any], saved_paths: list[tuple[Any, ...]],
             metadata: Mapping[str, Any]) -> dict[tuple[Any, ...], torch.Tensor]:
    """The tensor each saved tensor loads into: the caller's, else a new full CPU tensor."""
    _, own = split_tensors(dict(state))
    saved_keys = {tensor_key(p) for p in saved_paths}
    missing = sorted(tensor_key(p) for p in own if tensor_key(p) not in saved_keys)
    if missing:
        raise CheckpointError(f"sharded checkpoint {folder} lacks {_preview(missing)}")
    shapes = [f"{tensor_key(p)}: checkpoint {tuple(metadata[tensor_key(p)].size)} vs {tuple(t.shape)}"
              for p, t in own.items() if tuple(metadata[tensor_key(p)].size) != tuple(t.shape)]
    if shapes:
        raise CheckpointError(f"sharded checkpoint {folder} does not fit: shape mismatches {_preview(shapes)}")
    targets = {}
    for path in saved_paths:
        md = metadata[tensor_key(path)]
        targets[path] = own[path] if path in own else torch.empty(md.size, dtype=md.properties.dtype)
    return targets


@contextlib.contextmanager
def _reporting(folder: Path, action: str, cleanup: Path | None = None) -> Iterator[None]:
    """Report failures as :class:`CheckpointError` naming ``folder``; remove ``cleanup`` on failure."""
    try:
        with warnings.catch_warnings():  # DCP warns that it saves/loads in one process when told to
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
            yield
    except BaseException as exc:
        if cleanup is not None:
            folders.remove_tree(cleanup)
        if isinstance(exc, CheckpointError) or not isinstance(exc, (Exception, CheckpointException)):
            raise
        rank, cause = _first_failure(exc)
        if isinstance(cause, CheckpointError):
            raise cause from None
        where = f" (rank {rank})" if rank is not None else ""
        suffix = "; the folder already there is unchanged" if action == "write" else ""
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else first_line(cause)
        raise CheckpointError(f"cannot {action} sharded checkpoint {folder}{where}: {reason}{suffix}") from exc


def _first_failure(exc: BaseException) -> tuple[int | None, BaseException]:
    """The lowest failed rank and its error, from DCP's ``CheckpointException`` (it collects them)."""
    if isinstance(exc, CheckpointException) and exc.failures:
        rank = min(exc.failures)
        return rank, exc.failures[rank][0]
    return None, exc


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"
