"""The manifest of a sharded checkpoint folder: the size and digest of every file in it.

``torch.distributed.checkpoint`` checks nothing when it reads: a truncated or changed shard loads
silently, or fails deep inside a collective. A sharded checkpoint folder therefore carries
``manifest.json``, written last, naming every file with its size and digest (the digest the
sealed single files use, see :mod:`declarative_train.checkpoint.file`; about 20 GB/s, so every
rank can check the whole folder before loading). :func:`verify` reports a missing, extra,
truncated or changed file by name before anything is loaded. Each rank digests the files it wrote
(:func:`write_rank_digests`) and rank 0 merges them (:func:`write_manifest`), so digesting runs
in parallel. The manifest detects damage, not tampering: whoever can change a file can rewrite
the manifest too; what keeps a folder from running code is how it is read (``sharded_dcp``).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from declarative_train._version import __version__
from declarative_train.checkpoint import file as ckpt_file
from declarative_train.errors import CheckpointError
from declarative_train.utils.io import fsync_dir

MANIFEST = "manifest.json"
SHARDED_FORMAT = "declarative_train.sharded_checkpoint"
SHARDED_FORMAT_VERSION = 1
_RANK_DIGESTS = ".digests-rank{rank}.json"


def file_digest(path: Path) -> str:
    """The hex digest of every byte of ``path`` (the sealed files' block-sum digest)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            total, weighted = ckpt_file._digest(b"", 0)
        else:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                total, weighted = ckpt_file._digest(mapped, size)
    return f"{total:016x}{weighted:016x}"


def describe(path: Path) -> dict[str, Any]:
    """``{"size": bytes, "digest": hex}`` of one file."""
    return {"size": path.stat().st_size, "digest": file_digest(path)}


def write_rank_digests(folder: Path, rank: int, names: Iterable[str]) -> None:
    """Digest the files one rank wrote, for rank 0 to merge into the manifest."""
    entries = {name: describe(folder / name) for name in sorted(set(names))}
    (folder / _RANK_DIGESTS.format(rank=rank)).write_text(json.dumps(entries))


def write_manifest(folder: Path) -> None:
    """Merge the ranks' digests, digest every other file, write ``manifest.json``; fsync all.

    Runs on one process once every rank has written its files.
    """
    files: dict[str, Any] = {}
    rank_digests = sorted(folder.glob(_RANK_DIGESTS.format(rank="*")))
    for digests in rank_digests:
        files.update(json.loads(digests.read_text()))
        digests.unlink()
    for entry in sorted(folder.iterdir()):
        if entry.name not in files and entry.name != MANIFEST:
            if not entry.is_file() or entry.is_symlink():
                raise CheckpointError(f"sharded checkpoint {folder}: unexpected entry {entry.name}")
            files[entry.name] = describe(entry)
    manifest = {"format": SHARDED_FORMAT, "format_version": SHARDED_FORMAT_VERSION,
                "package_version": __version__, "files": dict(sorted(files.items()))}
    with open(folder / MANIFEST, "w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    for name in files:  # the shards are synced by their writers; this covers every other file
        with open(folder / name, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(folder)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder`` with its header checked; :class:`CheckpointError` if unusable."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        kind = "folder" if folder.is_dir() else "path"
        reason = "no such folder" if not folder.exists() else f"{MANIFEST} is missing (an incomplete or foreign {kind})"
        raise CheckpointError(f"sharded checkpoint {folder}: {reason}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"sharded checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SHARDED_FORMAT:
        raise CheckpointError(f"sharded checkpoint {path} was not written by declarative_train")
    if manifest.get("format_version") != SHARDED_FORMAT_VERSION:
        raise CheckpointError(f"sharded checkpoint {path} has format version {manifest.get('format_version')}; "
                              f"this version reads format {SHARDED_FORMAT_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_valid_entry(name, entry) for name, entry in files.items()):
        raise CheckpointError(f"sharded checkpoint {path} has a malformed file list")
    return manifest


def verify(folder: Path) -> dict[str, Any]:
    """Check every file of ``folder`` against its manifest; return the manifest.

    Raises :class:`CheckpointError` naming the first missing, extra, truncated or changed file.
    """
    manifest = read_manifest(folder)
    expected: dict[str, Any] = manifest["files"]
    present = {entry.name for entry in folder.iterdir()} - {MANIFEST}
    extra = sorted(present - set(expected))
    if extra:
        raise CheckpointError(f"sharded checkpoint {folder}: {folder / extra[0]} is not in its manifest "
                              "(an extra or foreign file)")
    for name, entry in expected.items():
        path = folder / name
        if name not in present:
            raise CheckpointError(f"sharded checkpoint {folder}: {path} is missing")
        if not path.is_file() or path.is_symlink():
            raise CheckpointError(f"sharded checkpoint {folder}: {path} is not a plain file")
        size = path.stat().st_size
        if size != entry["size"]:
            what = "truncated" if size < entry["size"] else "longer than written"
            raise CheckpointError(f"sharded checkpoint {folder}: {path} is {what} "
                                  f"({size} bytes, {entry['size']} written)")
        if file_digest(path) != entry["digest"]:
            raise CheckpointError(f"sharded checkpoint {folder}: {path} is corrupt "
                                  "(its bytes do not match the manifest)")
    return manifest


def _valid_entry(name: Any, entry: Any) -> bool:
    """A plain file name (no folders, no way out of the folder) with a size and a digest."""
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST) and "/" not in name
            and "\\" not in name and isinstance(entry, dict) and isinstance(entry.get("size"), int)
            and isinstance(entry.get("digest"), str))
