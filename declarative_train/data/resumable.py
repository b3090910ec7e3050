"""The training sampler: an order fixed by ``(seed, epoch)`` that can start at any position.

Resuming mid-epoch must continue with the very batches the interrupted run had not yet seen,
without loading the ones it had. :class:`ResumableSampler` makes that cheap: the order of an epoch
depends on nothing but the seed and the epoch number, and :meth:`ResumableSampler.start_epoch`
drops the indices already consumed before any data is read.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

log = logging.getLogger(__name__)


class ResumableSampler(Sampler[int]):
    """Yields a seeded permutation per epoch (or ``inner``'s indices), from any position.

    Without ``inner``: ``torch.randperm`` with a generator seeded ``seed + epoch`` (as
    ``DistributedSampler`` does) when ``shuffle``, else ``0..n-1``. With ``inner`` (e.g. a
    distributed sampler): ``inner``'s order after ``inner.set_epoch(epoch)``.

    ``generator`` is reseeded at every epoch; give it to the DataLoader so that worker seeds
    depend on ``(seed, epoch)`` as well and creating the loader's iterator does not draw from the
    global torch RNG (which a resumed run restores from the checkpoint).
    """

    def __init__(self, num_samples: int, *, shuffle: bool, seed: int, inner: Sampler[Any] | None = None) -> None:
        self.num_samples = len(inner) if isinstance(inner, Sized) else num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.inner = inner
        self.epoch = 0
        self.generator = torch.Generator()
        #: Samples per batch of the loader using this sampler (set by :func:`train_loader`).
        self.batch_size = 1
        self._skip = 0

    def start_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Set the epoch of the next pass, and how many of its first batches to drop."""
        self.epoch = epoch
        self._skip = skip_batches * self.batch_size
        self.generator.manual_seed(self.seed + epoch)
        set_epoch = getattr(self.inner, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """``DistributedSampler``'s spelling of :meth:`start_epoch` (from the start)."""
        self.start_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0  # the skip applies to one pass only
        if self.inner is not None:
            return itertools.islice(iter(self.inner), skip, None)
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + self.epoch))
            return iter(order[skip:].tolist())
        return iter(range(skip, self.num_samples))

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, Any]:
        """What fixes the order: the seed, and the sample count it was drawn for."""
        return {"seed": self.seed, "num_samples": self.num_samples, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue with the order of the run that saved ``state``."""
        if state.get("num_samples") != self.num_samples:
            log.warning("the checkpoint was saved for %s training samples, this data has %d: the resumed "
                        "epoch will not continue the same order", state.get("num_samples"), self.num_samples)
        self.seed = state["seed"]


def train_loader(data: Any, inner: Sampler[Any] | None, *, shuffle: bool, seed: int) -> tuple[Any, ResumableSampler | None]:
    """The data module's train loader over a :class:`ResumableSampler`, and that sampler.

    The sampler is ``None`` when the module's ``dataloader`` does not use it (a custom batch
    sampler, say): resuming mid-epoch then has to load the batches it skips.
    """
    sampler = ResumableSampler(len(data.datasets["train"]), shuffle=shuffle, seed=seed, inner=inner)
    loader = data.dataloader("train", shuffle=shuffle, sampler=sampler, generator=sampler.generator)
    if isinstance(loader, DataLoader) and loader.sampler is sampler and loader.batch_size:
        sampler.batch_size = loader.batch_size
        return loader, sampler
    log.warning("%s's train loader does not use the executor's sampler: resuming mid-epoch loads the "
                "batches it skips", type(data).__name__)
    return loader, None
