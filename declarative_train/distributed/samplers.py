"""Samplers that shard a dataset across processes.

Training uses :class:`torch.utils.data.DistributedSampler`: every rank gets the same number of
samples (a few are repeated to even the shards out, so every rank runs the same number of steps),
shuffled by ``seed + epoch`` alike on every rank. Because rank ``r`` takes positions ``r, r+W,
r+2W, ...`` of that permutation, one step of W ranks with batch B sees exactly the samples that one
process with batch ``W*B`` sees (its :class:`~declarative_train.data.resumable.ResumableSampler`
draws the same permutation): 1 and W processes train alike.

Evaluation uses :class:`EvalShardSampler`, which never repeats a sample, so metrics synchronised
over the ranks equal the metrics of one process on the same data exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

from torch.utils.data import DistributedSampler, Sampler


def train_sampler(dataset: Any, *, rank: int, world_size: int, shuffle: bool, seed: int) -> DistributedSampler[Any]:
    """The training sampler of ``rank``: even shards, reshuffled by ``set_epoch``."""
    return DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)


class EvalShardSampler(Sampler[int]):
    """Positions ``rank, rank + world_size, ...`` of the dataset, in order, with no padding.

    Shards differ in length by at most one sample; together they hold every sample once.
    """

    def __init__(self, dataset: Sized, *, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.size = len(dataset)
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
