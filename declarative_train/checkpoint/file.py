"""Checkpoint files: torch's zip format, written atomically, sealed with an integrity footer.

``torch.load`` checks nothing: the CRC-32 that ``torch.save`` stores per record is never read, so a
flipped bit inside a tensor loads silently. Every file written here ends with a footer (the zip
archive's comment) holding a digest of every byte before it, and :func:`read` checks it before
loading: a truncated, extended or changed file is reported instead of trained on. The files stay
ordinary torch checkpoints (``torch.load(path, weights_only=True)`` reads them).

The digest is two wrapping 64-bit sums over the file's 4 KiB blocks: the sum of the block sums
(any changed byte changes it) and their sum weighted by position (so does a block moved
elsewhere). Vectorised it runs at memory speed, about three times zlib's CRC-32, so torch's own
CRC-32 is switched off while writing, which more than pays for the digest.

Writing comes in two parts. :func:`begin` runs ``torch.save`` into a temp file in the target
folder (optionally while a helper thread flushes the written part to disk, so that a final fsync
has little left to do). :meth:`PendingWrite.finish` seals it, fsyncs, then renames it over the
target; other targets get a hard link to the same file (a copy where links are not supported),
each placed by rename. The second part can run on another thread (see ``writer``). A crash at
any moment leaves every target either old or new.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import shutil
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from declarative_train.errors import CheckpointError
from declarative_train.utils.io import fsync_dir
from declarative_train.utils.text import first_line
from declarative_train.utils.tree import tensor_bytes

FOOTER_PREFIX = b"declarative_train.ckpt digest="
FOOTER_SIZE = len(FOOTER_PREFIX) + 32  # two 64-bit sums in hex
_EOCD = struct.Struct("<4s4H2LH")  # zip's end of central directory record, comment length last
_BLOCK = 4096
_FLUSH_EVERY_S = 0.05
#: States with more tensor bytes than this are flushed to disk while ``torch.save`` writes them.
FLUSH_EARLY_BYTES = 64 << 20
_TORCH_CRC = threading.Lock()


def write(obj: Any, paths: Sequence[str | os.PathLike[str]]) -> None:
    """Serialise ``obj`` once and place it atomically at every path of ``paths``, in order.

    Put ``last.ckpt`` last: a crash between two placements then never leaves a ``last.ckpt``
    whose top-k table names a file that was not written.
    """
    pending = begin(obj, paths)
    if pending is not None:
        pending.finish()


def begin(
    obj: Any, paths: Sequence[str | os.PathLike[str]], *, flush_early: bool | None = None,
) -> PendingWrite | None:
    """Serialise ``obj`` to a temp file beside the last path; :meth:`PendingWrite.finish` places it.

    After this returns, changes to ``obj``'s tensors no longer reach the file. ``flush_early``
    pushes the written part to disk while serialising, so a ``finish`` right after has little
    left to sync (``None``: when ``obj`` holds more than ``FLUSH_EARLY_BYTES`` of tensors; below
    that, starting the helper thread costs more than it saves). ``None`` when ``paths`` is empty.
    """
    targets = [Path(p) for p in paths]
    if not targets:
        return None
    if flush_early is None:
        flush_early = tensor_bytes(obj) > FLUSH_EARLY_BYTES
    pending = PendingWrite(targets)
    with pending.reporting_failures():
        targets[-1].parent.mkdir(parents=True, exist_ok=True)
        pending.tmp.touch(exist_ok=False)
        flushing = _flushing_in_background(pending.tmp) if flush_early else contextlib.nullcontext()
        with flushing, _without_torch_crc():
            torch.save(obj, pending.tmp)
    return pending


class PendingWrite:
    """A checkpoint serialised to a temp file, not yet sealed, synced or in place."""

    def __init__(self, targets: list[Path]) -> None:
        self.targets = targets
        self.tmp = targets[-1].parent / _temp_name(targets[-1])

    def finish(self) -> None:
        """Seal the temp file, fsync it, put it at every target in order, then fsync the folders."""
        with self.reporting_failures():
            _seal(self.tmp)
            for target in self.targets[:-1]:
                _place_copy(self.tmp, target)
            os.replace(self.tmp, self.targets[-1])
        for folder in {t.parent for t in self.targets}:
            fsync_dir(folder)

    @contextlib.contextmanager
    def reporting_failures(self) -> Iterator[None]:
        """On any failure remove the temp file; report errors as :class:`CheckpointError`."""
        try:
            yield
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            if isinstance(exc, Exception):  # torch.save reports a full disk as a RuntimeError
                reason = _reason(exc) if isinstance(exc, OSError) else first_line(exc)
                raise CheckpointError(f"cannot write checkpoint {self.targets[-1]}: {reason}; "
                                      "the files already there are unchanged") from exc
            raise


def read(path: str | os.PathLike[str]) -> Any:
    """Verify ``path`` and load it with ``weights_only=True`` (tensors mapped from the file)."""
    verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many kinds for unreadable or unsafe content
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {first_line(exc)}") from None


def verify(path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` unless every byte of ``path`` is as written."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < FOOTER_SIZE + _EOCD.size:
                raise CheckpointError(f"checkpoint {path} is truncated or empty ({size} bytes)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                footer = mapped[size - FOOTER_SIZE:]
                if not footer.startswith(FOOTER_PREFIX):
                    raise CheckpointError(f"checkpoint {path} has no integrity footer: truncated, "
                                          "or not written by declarative_train")
                if footer != _footer(*_digest(mapped, size - FOOTER_SIZE)):
                    raise CheckpointError(f"checkpoint {path} is corrupt: its bytes do not match its integrity footer")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a folder, not a file") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {_reason(exc)}") from None


def stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Temp files a killed writer left in ``folder`` (never a complete checkpoint)."""
    return sorted(p for p in Path(folder).glob(".*.ckpt.*.tmp") if p.is_file())


def _digest(data: Any, length: int) -> tuple[int, int]:
    """(sum of the 4 KiB block sums, their position-weighted sum) of ``data[:length]``, mod 2**64."""
    full = length // _BLOCK * _BLOCK
    words = np.frombuffer(data, dtype=np.uint64, count=full // 8)
    tail = np.zeros(_BLOCK, dtype=np.uint8)
    tail[: length - full] = np.frombuffer(data, dtype=np.uint8, count=length - full, offset=full)
    sums = np.append(words.reshape(-1, _BLOCK // 8).sum(axis=1, dtype=np.uint64), tail.view(np.uint64).sum())
    weights = np.arange(1, len(sums) + 1, dtype=np.uint64)
    return int(sums.sum(dtype=np.uint64)), int((sums * weights).sum(dtype=np.uint64))


def _footer(total: int, weighted: int) -> bytes:
    return FOOTER_PREFIX + b"%016x%016x" % (total, weighted)


def _seal(path: Path) -> None:
    """Append the footer as the zip archive's comment, then fsync."""
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(size - _EOCD.size)
        eocd = _EOCD.unpack(handle.read(_EOCD.size))
        if eocd[0] != b"PK\x05\x06" or eocd[-1] != 0:
            raise CheckpointError(f"torch.save wrote an unexpected zip layout to {path}")
        handle.seek(size - 2)
        handle.write(struct.pack("<H", FOOTER_SIZE))  # the comment's length, then the comment
        handle.flush()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            footer = _footer(*_digest(mapped, size))
        handle.seek(size)
        handle.write(footer)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _without_torch_crc() -> Iterator[None]:
    """Skip torch.save's per-record CRC-32 (never checked by torch.load; the digest covers it)."""
    setter = getattr(torch.serialization, "set_crc32_options", None)  # torch >= 2.5
    if setter is None:
        yield
        return
    with _TORCH_CRC:
        before = torch.serialization.get_crc32_options()
        setter(False)
        try:
            yield
        finally:
            setter(before)


def _place_copy(source: Path, target: Path) -> None:
    """Put the content of ``source`` at ``target`` atomically: hard link (or copy), then rename."""
    tmp = target.parent / _temp_name(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _temp_name(target: Path) -> str:
    """A hidden name beside ``target`` that no other writer uses (see :func:`stale_temp_files`)."""
    return f".{target.name}.{secrets.token_hex(6)}.tmp"


@contextlib.contextmanager
def _flushing_in_background(path: Path) -> Iterator[None]:
    """While the body writes ``path``, push what is written to disk every few milliseconds."""
    stop = threading.Event()
    sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync

    def flush() -> None:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                while not stop.wait(_FLUSH_EVERY_S):
                    sync(fd)
            finally:
                os.close(fd)

    thread = threading.Thread(target=flush, name="checkpoint-flush", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
