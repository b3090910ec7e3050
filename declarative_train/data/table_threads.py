"""Jobs on a few threads of their own, for reading and encoding a table (:mod:`.table_csv`,
:mod:`.table_splits`).

Threads of their own rather than a pool's: pyarrow's memory pool (mimalloc) keeps the pages a
thread freed until that very thread collects them, so each thread hands its free pages back
before it ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


def in_order(jobs: list[Any], run: Callable[[Any], Any], threads: int, pool: Any) -> list[Any]:
    """``run`` of each of ``jobs``, in their order, on up to ``threads`` threads of their own. The
    first exception is raised once every thread has stopped; the others then take no new job."""
    results: list[Any] = [None] * len(jobs)
    failures: list[BaseException] = []
    pending: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
    for item in enumerate(jobs):
        pending.put(item)

    def work() -> None:
        try:
            while not failures:
                try:
                    index, job = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[index] = run(job)
                except BaseException as exc:  # raised in the calling thread
                    failures.append(exc)
        finally:
            pool.release_unused()  # mimalloc keeps a thread's freed pages until that thread collects them

    workers = [threading.Thread(target=work, name=f"table-{index}", daemon=True)
               for index in range(min(max(threads, 1), len(jobs)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]
    return results
