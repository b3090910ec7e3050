"""In-memory datasets are fetched a batch at a time, and the batches equal the stock DataLoader's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

from declarative_train.data import DataModule
from declarative_train.data.module import BatchDataset, BatchFetchingTensorDataset
from declarative_train.data.resumable import ResumableSampler, train_loader


class Counting(TensorDataset):
    """Counts per-sample fetches."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        super().__init__(*tensors)
        self.calls = 0

    def __getitem__(self, index: int) -> Any:
        self.calls += 1
        return super().__getitem__(index)


def _module(dataset: Dataset[Any], **loader: Any) -> DataModule:
    module = DataModule(batch_size=8, **loader)
    module.datasets = {"train": dataset, "val": dataset}
    return module


def _tensors(n: int = 45) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=generator), torch.randint(0, 4, (n,), generator=generator)


def _stock_batches(dataset: TensorDataset, **kwargs: Any) -> list[list[torch.Tensor]]:
    return list(DataLoader(dataset, batch_size=8, **kwargs))


def _assert_same(batches: list[Any], expected: list[Any]) -> None:
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected):
        assert isinstance(got, list) and len(got) == len(want)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_a_tensor_dataset_is_fetched_per_batch_with_the_stock_loaders_batches() -> None:
    features, target = _tensors()
    module = _module(TensorDataset(features, target), drop_last=True)
    loader = module.dataloader("val")
    assert isinstance(loader.dataset, BatchFetchingTensorDataset)
    _assert_same(list(loader), _stock_batches(TensorDataset(features, target)))
    shuffled = module.dataloader("train", shuffle=True, generator=torch.Generator().manual_seed(3))
    expected = _stock_batches(TensorDataset(features, target), shuffle=True, drop_last=True,
                              generator=torch.Generator().manual_seed(3))
    _assert_same(list(shuffled), expected)


def test_the_resumable_sampler_skips_whole_batches_in_the_same_order() -> None:
    features, target = _tensors()
    module = _module(TensorDataset(features, target))
    loader, sampler = train_loader(module, None, shuffle=True, seed=5)
    assert sampler is not None and sampler.batch_size == 8
    sampler.start_epoch(2)
    whole = list(loader)
    sampler.start_epoch(2, skip_batches=3)
    _assert_same(list(loader), whole[3:])
    reference = ResumableSampler(len(features), shuffle=True, seed=5)
    reference.start_epoch(2)
    _assert_same(whole, _stock_batches(TensorDataset(features, target), sampler=reference))


def test_distributed_shards_and_workers_give_the_same_batches() -> None:
    features, target = _tensors()
    module = _module(TensorDataset(features, target), num_workers=2)
    for rank in (0, 1):
        shard = DistributedSampler(module.datasets["train"], num_replicas=2, rank=rank, shuffle=True, seed=1)
        loader, sampler = train_loader(module, shard, shuffle=True, seed=1)
        assert sampler is not None
        sampler.start_epoch(1)
        expected_shard = DistributedSampler(module.datasets["train"], num_replicas=2, rank=rank, shuffle=True, seed=1)
        expected_shard.set_epoch(1)
        _assert_same(list(loader), _stock_batches(TensorDataset(features, target), sampler=expected_shard))


def test_subclasses_with_their_own_getitem_and_batch_fetch_false_keep_the_per_sample_path() -> None:
    features, target = _tensors()
    counting = Counting(features, target)
    list(_module(counting).dataloader("val"))
    assert counting.calls == len(features)
    plain = TensorDataset(features, target)
    loader = _module(plain, batch_fetch=False).dataloader("val")
    assert loader.dataset is plain
    _assert_same(list(loader), _stock_batches(plain))


@pytest.mark.parametrize("shape", [(), (2, 2)])
def test_sample_shapes_and_single_tensor_datasets_collate_as_the_stock_loader(shape: tuple[int, ...]) -> None:
    values = torch.arange(20 * max(1, torch.Size(shape).numel()), dtype=torch.float64).reshape(20, *shape)
    module = _module(TensorDataset(values))
    _assert_same(list(module.dataloader("val")), _stock_batches(TensorDataset(values)))


class Squares(BatchDataset):
    """Rows made a batch at a time: the index and its square, counting the fetches."""

    def __init__(self, n: int) -> None:
        self.n, self.fetches = n, 0

    def __len__(self) -> int:
        return self.n

    def fetch(self, indices: Sequence[int]) -> list[torch.Tensor]:
        self.fetches += 1
        index = torch.as_tensor(list(indices), dtype=torch.float32)
        return [torch.stack([index, index * index], dim=1), index.long()]


def test_a_batch_dataset_makes_each_batch_once_and_equals_its_per_sample_path() -> None:
    batched, per_sample = Squares(45), Squares(45)
    loader = _module(batched, drop_last=True).dataloader("train", shuffle=True,
                                                          generator=torch.Generator().manual_seed(3))
    expected = _module(per_sample, batch_fetch=False, drop_last=True).dataloader(
        "train", shuffle=True, generator=torch.Generator().manual_seed(3))
    _assert_same(list(loader), list(expected))
    assert batched.fetches == 45 // 8  # one fetch per batch (the last, short one dropped)
    assert per_sample.fetches == 45 // 8 * 8  # one per sample, through __getitem__
    assert [t.tolist() for t in batched[4]] == [[4.0, 16.0], 4]
