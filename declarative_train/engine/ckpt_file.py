"""Checkpoint files: torch's zip format, written atomically, sealed with an integrity footer.

``torch.save`` stores a CRC-32 for every record of its zip archive, but ``torch.load`` never checks
it: a flipped bit inside a tensor loads silently. Every file written here is sealed with a footer
(the zip archive's comment) holding a CRC-32 of all the bytes the record CRCs do not cover (local
headers, padding, data descriptors, central directory). :func:`read` checks both before loading,
so any changed, missing or extra byte is reported instead of being trained on. The files remain
ordinary torch checkpoints: ``torch.load(path, weights_only=True)`` reads them.

Writing: ``torch.save`` to a temp file in the target folder while a helper thread flushes the
written part to disk (so the final fsync has little left to do), seal, fsync, then rename over
the target; other targets get a hard link to the same file (a copy where links are not
supported), each placed by rename. A crash at any moment leaves every target either old or new.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import shutil
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from declarative_train.utils.io import fsync_dir

FOOTER_PREFIX = b"declarative_train.ckpt crc32="
FOOTER_SIZE = len(FOOTER_PREFIX) + 8  # eight hex digits
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record, comment length last
_LOCAL_HEADER_SIZE = 30
_FLUSH_EVERY_S = 0.05
_PARALLEL_CRC_BYTES = 64 << 20
_MAX_CRC_THREADS = 8


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or used: unreadable, corrupt, or for another model."""


def write(obj: Any, paths: Sequence[str | os.PathLike[str]]) -> None:
    """Serialise ``obj`` once and place it atomically at every path of ``paths``, in order.

    Put ``last.ckpt`` last: a crash between two placements then never leaves a ``last.ckpt``
    whose top-k table names a file that was not written.
    """
    targets = [Path(p) for p in paths]
    if not targets:
        return
    final = targets[-1]
    tmp = final.parent / _temp_name(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch(exist_ok=False)
        with _flushing_in_background(tmp):
            torch.save(obj, tmp)
        _seal(tmp)
        for target in targets[:-1]:
            _place_copy(tmp, target)
        os.replace(tmp, final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception):  # torch.save reports a full disk as a RuntimeError
            reason = _reason(exc) if isinstance(exc, OSError) else _first_line(exc)
            raise CheckpointError(f"cannot write checkpoint {final}: {reason}; "
                                  "the files already there are unchanged") from exc
        raise
    for folder in {t.parent for t in targets}:
        fsync_dir(folder)


def read(path: str | os.PathLike[str]) -> Any:
    """Verify ``path`` and load it with ``weights_only=True`` (tensors mapped from the file)."""
    verify(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many kinds for unreadable or unsafe content
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {_first_line(exc)}") from None


def verify(path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` unless every byte of ``path`` is as written."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < FOOTER_SIZE + _EOCD.size:
                raise CheckpointError(f"checkpoint {path} is truncated or empty ({size} bytes)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                _verify_mapped(str(path), handle, memoryview(mapped))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a folder, not a file") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {_reason(exc)}") from None


def _verify_mapped(path: str, handle: Any, data: memoryview) -> None:
    try:
        footer = bytes(data[-FOOTER_SIZE:])
        if not footer.startswith(FOOTER_PREFIX):
            raise CheckpointError(
                f"checkpoint {path} has no integrity footer: truncated, or not written by declarative_train")
        ranges = _record_ranges(path, handle, data)
        for (name, *_), ok in zip(ranges, _records_intact(data, ranges)):
            if not ok:
                raise CheckpointError(f"checkpoint {path} is corrupt: record {name!r} fails its CRC-32 check")
        if _footer(_gaps_crc(data, ranges, len(data) - FOOTER_SIZE)) != footer:
            raise CheckpointError(f"checkpoint {path} is corrupt: its zip headers or footer fail the integrity check")
    finally:
        data.release()


def _records_intact(data: memoryview, ranges: list[tuple[str, int, int, int]]) -> list[bool]:
    """Whether each record matches its CRC-32; large files use a thread per core (crc32 drops the GIL)."""
    def intact(record: tuple[str, int, int, int]) -> bool:
        _, start, end, crc = record
        return zlib.crc32(data[start:end]) == crc

    threads = min(_MAX_CRC_THREADS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if threads < 2 or len(data) < _PARALLEL_CRC_BYTES:
        return [intact(r) for r in ranges]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(intact, ranges))


def _record_ranges(path: str, handle: Any, data: memoryview) -> list[tuple[str, int, int, int]]:
    """``(name, data start, data end, CRC-32)`` of every record, in file order."""
    try:
        infos = zipfile.ZipFile(handle).infolist()
    except Exception as exc:  # zipfile raises many kinds for damaged archives
        raise CheckpointError(f"checkpoint {path} is corrupt: not a readable zip archive ({exc})") from None
    ranges = []
    for info in infos:
        offset = info.header_offset
        header = bytes(data[offset:offset + _LOCAL_HEADER_SIZE])
        if len(header) < _LOCAL_HEADER_SIZE or header[:4] != b"PK\x03\x04" or info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"checkpoint {path} is corrupt: bad header of record {info.filename!r}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        start = offset + _LOCAL_HEADER_SIZE + name_len + extra_len
        end = start + info.compress_size
        if end > len(data) - FOOTER_SIZE:
            raise CheckpointError(f"checkpoint {path} is truncated: record {info.filename!r} ends past the file")
        ranges.append((info.filename.split("/", 1)[-1], start, end, info.CRC))  # minus torch's archive folder
    ranges.sort(key=lambda r: r[1])
    for (name, _, end, _), (_, start, _, _) in zip(ranges, ranges[1:]):
        if start < end:
            raise CheckpointError(f"checkpoint {path} is corrupt: record {name!r} overlaps the next one")
    return ranges


def _gaps_crc(data: memoryview, ranges: list[tuple[str, int, int, int]], stop: int) -> int:
    """CRC-32 of ``data[:stop]`` without the record contents (which carry their own CRCs)."""
    crc, position = 0, 0
    for _, start, end, _ in ranges:
        crc = zlib.crc32(data[position:start], crc)
        position = end
    return zlib.crc32(data[position:stop], crc)


def _seal(path: Path) -> None:
    """Append the footer as the zip comment, then fsync."""
    with open(path, "r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(size - _EOCD.size)
        eocd = _EOCD.unpack(handle.read(_EOCD.size))
        if eocd[0] != b"PK\x05\x06" or eocd[-1] != 0:
            raise CheckpointError(f"torch.save wrote an unexpected zip layout to {path}")
        handle.seek(size - 2)
        handle.write(struct.pack("<H", FOOTER_SIZE))
        handle.flush()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                crc = _gaps_crc(view, _record_ranges(str(path), handle, view), size)
            finally:
                view.release()
        handle.seek(size)
        handle.write(_footer(crc))
        handle.flush()
        os.fsync(handle.fileno())


def _footer(crc: int) -> bytes:
    return FOOTER_PREFIX + b"%08x" % crc


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


def stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Temp files a killed writer left in ``folder`` (never a complete checkpoint)."""
    return sorted(p for p in Path(folder).glob(".*.ckpt.*.tmp") if p.is_file())


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
