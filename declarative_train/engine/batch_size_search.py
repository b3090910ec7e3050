"""The batch-size search: the largest batch (or the fastest) whose training step fits in memory.

Sizes double from a start value until a trial step does not fit (CUDA out of memory, caught and
freed; or its peak memory above the budget) or the train split's size is reached; ``binsearch``
then bisects between the last size that fitted and the first that did not.

Memory of a trial (two optimizer steps, so optimizer state exists): on CUDA the allocator's peak
(``torch.cuda.max_memory_allocated``); elsewhere :class:`TensorMemoryProbe`, the peak bytes of the
tensor storages alive during the steps (weights and buffers plus every storage an operator
creates, forward, backward and optimizer step, until it is freed). The process's RSS is not used:
its peak only grows and the allocator keeps freed pages, so a smaller trial after a larger one
would measure the larger.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from declarative_train.engine.context import TrainingContext
from declarative_train.engine.events import Event
from declarative_train.engine.trial_runs import TrialParts, restoring, trial_executor

log = logging.getLogger(__name__)

BATCH_SIZE_MODES = ("power", "binsearch", "throughput")


@attrs.frozen
class Trial:
    """One tried batch size: whether it fitted, its peak memory (bytes) and its speed (samples/s)."""

    batch_size: int
    fits: bool
    peak_bytes: int | None = None
    samples_per_s: float | None = None


class TensorMemoryProbe(TorchDispatchMode):
    """While active, the peak bytes of live tensor storages: ``baseline`` plus every storage an
    operator returns, counted until it is freed (checked at each following operator)."""

    def __init__(self, baseline: int = 0) -> None:
        super().__init__()
        self.current = self.peak = baseline
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for key in [key for key, (ref, _) in self._live.items() if ref.expired()]:
            self.current -= self._live.pop(key)[1]
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and not leaf.is_meta:
                storage = leaf.untyped_storage()
                if storage._cdata not in self._live:
                    self._live[storage._cdata] = (StorageWeakRef(storage), storage.nbytes())
                    self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out


def search_batch_size(trial: Callable[[int], Trial], *, start: int, limit: int, mode: str = "binsearch") -> tuple[int | None, list[Trial]]:
    """The chosen batch size (``None``: not even ``start`` fits) and every trial, in order.

    ``start`` above ``limit`` (the train split's size) starts at ``limit``.
    """
    if mode not in BATCH_SIZE_MODES:
        raise ValueError(f"mode must be one of {BATCH_SIZE_MODES}, got {mode!r}")
    trials: list[Trial] = []
    size, good, bad = min(start, limit), None, None
    while True:
        trials.append(trial(size))
        if not trials[-1].fits:
            bad = size
            break
        good = size
        if size >= limit:
            break
        size = min(2 * size, limit)
    if good is None:
        return None, trials
    if mode == "throughput":
        fitted = [t for t in trials if t.fits and t.samples_per_s is not None]
        return max(fitted, key=lambda t: t.samples_per_s or 0.0).batch_size, trials
    if mode == "binsearch" and bad is not None:
        while bad - good > 1:
            middle = (good + bad) // 2
            trials.append(trial(middle))
            good, bad = (middle, bad) if trials[-1].fits else (good, middle)
    return good, trials


def train_split_size(parts: TrialParts) -> int:
    """Samples in the data's train split (the largest batch worth trying)."""
    parts.data.setup()
    return len(parts.data.datasets["train"])


def run_trial(parts: TrialParts, batch_size: int, max_memory_bytes: int | None) -> Trial:
    """Two optimizer steps at ``batch_size`` (weights and RNGs restored afterwards)."""
    previous = parts.data.batch_size
    parts.data.batch_size = batch_size
    device = parts.accelerator.device
    on_cuda = device.type == "cuda"
    times: list[float] = []

    def stamp(_: TrainingContext) -> None:
        if on_cuda:
            torch.cuda.synchronize(device)  # the step's time, not its launch
        times.append(time.perf_counter())

    peak: int | None = None
    try:
        with restoring(parts.task):
            executor = trial_executor(parts, max_steps=2)
            executor.setup()
            executor.events.on(Event.STEP_END, stamp)
            if on_cuda:
                torch.cuda.reset_peak_memory_stats(device)
                executor.fit()
                peak = torch.cuda.max_memory_allocated(device)
            else:
                baseline = sum(t.untyped_storage().nbytes() for t in [*parts.task.parameters(), *parts.task.buffers()])
                with TensorMemoryProbe(baseline) as probe:
                    executor.fit()
                peak = probe.peak
    except torch.cuda.OutOfMemoryError:
        log.info("batch_size=%d: out of memory", batch_size)
        return Trial(batch_size, False)
    finally:
        parts.data.batch_size = previous
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()
    fits = max_memory_bytes is None or peak <= max_memory_bytes
    speed = batch_size / (times[1] - times[0]) if len(times) == 2 else None
    log.info("batch_size=%d: peak memory %.1f MiB, %s samples/s%s", batch_size, peak / 2**20,
             f"{speed:.0f}" if speed else "?", "" if fits else " (over the budget)")
    return Trial(batch_size, fits, peak, speed)
