"""Writing checkpoint files without making the training loop wait for the disk.

On a small model a checkpoint's serialisation and fsyncs take far longer than copying its tensors.
A background write therefore takes a snapshot on the loop thread (the state's containers rebuilt,
its tensors copied to CPU memory) and leaves ``torch.save``, sealing, fsync and the rename into
place to a writer thread. A state too large to copy (by default, more than a quarter of the
available memory) is not copied: the loop thread serialises it into the temp file, which fixes
the content without a second copy in memory, and only the rest runs on the writer thread.
Every guarantee of ``file`` stays: a file appears complete and synced, or not at all.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from declarative_train.checkpoint import file as ckpt_file
from declarative_train.utils.tree import map_tensors, tensor_bytes

log = logging.getLogger(__name__)

#: Where the platform does not say how much memory is available: the snapshot limit.
FALLBACK_SNAPSHOT_LIMIT_BYTES = 1 << 30


class BackgroundWrites:
    """At most one write job on a writer thread: started by :meth:`submit`, reported by :meth:`wait`.

    The thread is started at the first job and kept until :meth:`close` (starting one per save
    costs more than a small model's save); a process that ends normally finishes the job before
    it exits.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._on_failure: Callable[[], None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a background write has not finished yet."""
        return self._pending is not None and not self._pending.done()

    def submit(self, job: Callable[[], None], on_failure: Callable[[], None] | None) -> None:
        """Run ``job`` on the writer thread (here, when the interpreter is shutting down)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        try:
            self._pending = self._pool.submit(job)
        except RuntimeError:  # the interpreter is shutting down: no new threads
            job()
            return
        self._on_failure = on_failure

    def wait(self) -> None:
        """Wait for the write in flight; raise its error if it failed."""
        pending, on_failure = self._pending, self._on_failure
        if pending is None:
            return
        failed = pending.exception() is not None  # waits; a signal here leaves the write pending
        self._pending = self._on_failure = None
        if failed:
            if on_failure is not None:
                on_failure()
            pending.result()

    def wait_quietly(self) -> None:
        """:meth:`wait`, logging a failed write instead of raising (another error is on its way)."""
        try:
            self.wait()
        except Exception as exc:
            log.error("%s", exc)

    def close(self, *, quietly: bool = False) -> None:
        """:meth:`wait` (or :meth:`wait_quietly`), then stop the writer thread (a later write starts another)."""
        try:
            self.wait_quietly() if quietly else self.wait()
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True)


class CheckpointWriter(BackgroundWrites):
    """Writes checkpoints one at a time, the slow part optionally on a writer thread.

    At most one write is in flight: the next :meth:`write` and :meth:`wait` wait for it first and
    raise its error (a :class:`~declarative_train.errors.CheckpointError`) there.

    Args:
        snapshot_limit_bytes: largest state (bytes of tensors) a background write copies in
            memory; ``None``: a quarter of the memory available at the time of the save.
    """

    def __init__(self, snapshot_limit_bytes: int | None = None) -> None:
        super().__init__()
        self.snapshot_limit_bytes = snapshot_limit_bytes

    def write(
        self, obj: Any, paths: Sequence[str | os.PathLike[str]], *, background: bool = False,
        then: Callable[[], None] | None = None, on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Save ``obj`` atomically at every path of ``paths``, in order; then call ``then``.

        Later changes to ``obj`` do not reach the files. With ``background`` the files are in
        place (and ``then`` has run) only once :meth:`wait` returns; ``then`` runs on the writer
        thread, and only after every file was written. If the background part fails, the
        :meth:`wait` that reports it calls ``on_failure`` first, on its own thread (a failure
        on the caller's thread is simply raised).
        """
        self.wait()
        if not paths:
            return
        if not background:
            _write(obj, paths, then, flush_early=None)
            return
        limit = self.snapshot_limit_bytes if self.snapshot_limit_bytes is not None else available_memory() // 4
        if tensor_bytes(obj) <= limit:
            # No early flushing: on the writer thread nobody waits for the final fsync.
            job = functools.partial(_write, snapshot(obj), paths, then, flush_early=False)
        else:
            pending = ckpt_file.begin(obj, paths, flush_early=False)
            assert pending is not None
            job = functools.partial(_finish, pending, then)
        self.submit(job, on_failure)


def snapshot(state: Any) -> Any:
    """A copy of ``state`` that later changes to its tensors or containers cannot reach.

    Containers are rebuilt (keeping their type and attributes, such as a state dict's
    ``_metadata``), tensors copied to the CPU (a tensor that appears twice, like tied weights, is
    copied once), everything else is shared: checkpoint states hold only immutable leaves.
    """
    return map_tensors(state, _copy_to_cpu, memo={})


def _copy_to_cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone() if tensor.device.type == "cpu" else tensor.detach().cpu()


def available_memory() -> int:
    """Bytes of memory available to new allocations without swapping (Linux's ``MemAvailable``)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_SNAPSHOT_LIMIT_BYTES * 4


def _write(obj: Any, paths: Sequence[str | os.PathLike[str]], then: Callable[[], None] | None, *,
           flush_early: bool | None) -> None:
    pending = ckpt_file.begin(obj, paths, flush_early=flush_early)
    if pending is not None:
        _finish(pending, then)


def _finish(pending: ckpt_file.PendingWrite, then: Callable[[], None] | None) -> None:
    pending.finish()
    if then is not None:
        then()
