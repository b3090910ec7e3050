"""Where a sharded checkpoint folder lives, and how a new one replaces an old one.

A save writes into a hidden temp folder beside the target (``.NAME.TOKEN.tmp``); its manifest is
written last, so a temp folder with a manifest is complete. :func:`commit` then moves the old
folder aside (``.NAME.TOKEN.old``), renames the new one into place and deletes the old one. A
crash at any moment leaves a complete folder: the target itself, or, between the two renames,
the complete new temp folder and the old one beside it. :func:`resolve` (used by every read)
finds that folder without changing anything, :func:`recover_interrupted` renames it into place,
and :func:`stale_temp_folders` lists what else a killed save left behind. Folders are deleted
by renaming them aside first (``.NAME.TOKEN.del``) and removing the manifest before the rest, so
a half-deleted folder is never taken for a checkpoint.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

from declarative_train.checkpoint.sharded_manifest import MANIFEST, read_manifest
from declarative_train.errors import CheckpointError
from declarative_train.utils.io import fsync_dir

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<token>[0-9a-f]{12})\.(?P<kind>tmp|old|del)$")


def temp_folder(target: Path, token: str) -> Path:
    """The temp folder a save of ``target`` writes into (``token`` agreed by all ranks)."""
    return target.parent / f".{target.name}.{token}.tmp"


def new_token() -> str:
    return secrets.token_hex(6)


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a sharded checkpoint: a folder, or one an interrupted save left recoverable."""
    target = Path(path)
    return target.is_dir() or (not target.exists() and resolve(target) != target)


def resolve(target: Path) -> Path:
    """The folder that holds ``target``'s checkpoint: ``target``, or where a crashed save left it.

    When ``target`` is missing, a complete new temp folder (with a manifest) wins over the old
    folder moved aside; among several, the newest. Changes nothing.
    """
    if target.exists():
        return target
    candidates = [(kind != "tmp", -p.stat().st_mtime, p) for p, kind in _leftovers(target)
                  if kind in ("tmp", "old") and (p / MANIFEST).is_file()]
    return min(candidates)[2] if candidates else target


def recover_interrupted(target: Path) -> Path:
    """Rename the folder :func:`resolve` finds into place, if ``target`` is missing (one process only)."""
    found = resolve(target)
    if found != target:
        os.rename(found, target)
        fsync_dir(target.parent)
    return target


def stale_temp_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """Leftovers of killed saves and deletions in ``folder``, except any that :func:`resolve` still needs."""
    stale = []
    for entry in Path(folder).iterdir() if Path(folder).is_dir() else []:
        match = _LEFTOVER.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            target = entry.parent / match["name"]
            if resolve(target) != entry:
                stale.append(entry)
    return sorted(stale)


def commit(temp: Path, target: Path) -> None:
    """Put the complete folder ``temp`` at ``target``, replacing what is there (see the module doc)."""
    fsync_dir(temp)
    if not target.exists():
        os.rename(temp, target)
        fsync_dir(target.parent)
        return
    aside = target.parent / f".{target.name}.{new_token()}.old"
    os.rename(target, aside)
    os.rename(temp, target)
    fsync_dir(target.parent)
    remove_tree(aside)


def delete_sharded(path: str | os.PathLike[str]) -> None:
    """Delete the sharded checkpoint folder ``path`` (top-k eviction).

    Refuses (:class:`CheckpointError`) anything that is not a declarative_train checkpoint folder:
    a path from a checkpoint's own top-k table never deletes an arbitrary folder.
    """
    target = Path(path)
    if target.is_symlink() or not target.is_dir():
        raise CheckpointError(f"{target} is not a sharded checkpoint folder; not deleted")
    read_manifest(target)  # raises unless it is one of ours
    aside = target.parent / f".{target.name}.{new_token()}.del"
    os.rename(target, aside)
    fsync_dir(target.parent)
    remove_tree(aside)


def remove_tree(path: Path) -> None:
    """Remove a checkpoint folder (manifest first, so a partial removal is never complete)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    (path / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def _leftovers(target: Path) -> list[tuple[Path, str]]:
    """``(folder, kind)`` of every leftover of saves and deletions of ``target``."""
    if not target.parent.is_dir():
        return []
    found = []
    for entry in target.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and match["name"] == target.name and entry.is_dir() and not entry.is_symlink():
            found.append((entry, match["kind"]))
    return found


def copy_sharded(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put a copy of the complete checkpoint folder ``source`` at ``target`` (one process).

    The files are hard links where the file system allows (a checkpoint's files never change
    once committed), else copies; the copy is committed like a save, so ``target`` is replaced
    atomically.
    """
    source, target = Path(source), Path(target)
    temp = temp_folder(target, new_token())
    try:
        temp.mkdir(parents=True)
        for entry in source.iterdir():
            try:
                os.link(entry, temp / entry.name)
            except OSError:
                shutil.copy2(entry, temp / entry.name)
        commit(temp, target)
    except OSError as exc:
        remove_tree(temp)
        raise CheckpointError(f"cannot write sharded checkpoint {target}: {exc}; the folder already there "
                              "is unchanged") from exc
