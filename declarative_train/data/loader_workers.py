"""DataLoader worker processes that end when the process that started them ends.

torch's workers watch their parent by comparing ``os.getppid()`` with the pid they saw when
their loop started. A worker forked just as its parent is killed (a rank killed by SIGKILL while
it starts an epoch) may already see pid 1 there, and then waits on its queue forever, holding
whatever the parent had open (the launcher's pipes, for instance). :func:`bind_to_parent` gives
each worker a watcher thread that compares against the pid of the process that built the loader.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader

#: Seconds between a worker's checks that its parent is alive.
CHECK_INTERVAL_S = 1.0


def bind_to_parent(loader: Any) -> None:
    """Make the worker processes of ``loader`` (a DataLoader) exit once this process is gone."""
    if not isinstance(loader, DataLoader) or loader.num_workers == 0:
        return
    if not isinstance(loader.worker_init_fn, _ExitWithParent):
        loader.worker_init_fn = _ExitWithParent(os.getpid(), loader.worker_init_fn)


class _ExitWithParent:
    """A ``worker_init_fn`` that starts the watcher, then runs the loader's own one (picklable)."""

    def __init__(self, parent_pid: int, inner: Callable[[int], None] | None) -> None:
        self.parent_pid = parent_pid
        self.inner = inner

    def __call__(self, worker_id: int) -> None:
        threading.Thread(target=_exit_when_orphaned, args=(self.parent_pid,), daemon=True,
                         name="exit-with-parent").start()
        if self.inner is not None:
            self.inner(worker_id)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        threading.Event().wait(CHECK_INTERVAL_S)
    os._exit(1)  # the parent is gone: nobody reads what this worker would produce
