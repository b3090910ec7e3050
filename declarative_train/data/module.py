"""The data-module protocol: datasets per split, and DataLoaders built the executor's way.

The executor decides shuffling and samplers (distributed, overfit); the module supplies datasets
and loader settings. Custom modules implement :meth:`DataModule.setup` (fill ``self.datasets``)
or override :meth:`DataModule.dataloader` entirely.

Datasets held as tensors (a plain :class:`~torch.utils.data.TensorDataset`) are fetched a batch at
a time: one indexing operation per tensor instead of ``batch_size`` calls to ``__getitem__`` and a
collate. So is a :class:`BatchDataset`, which makes a whole batch at once (a table's rows). The
loader's sampler, batch size and so its order are the stock DataLoader's, so batches are the same
tensors either way; ``batch_fetch=False`` turns it off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from declarative_train.errors import ArgumentError

SPLITS = ("train", "val", "test", "predict")


class DataModule:
    """Datasets for ``train``/``val``/``test`` (and ``predict``), and how to load them."""

    def __init__(
        self,
        *,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        drop_last: bool = False,
        batch_fetch: bool = True,
    ) -> None:
        name = type(self).__name__
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ArgumentError(name, "batch_size", f"must be an int >= 1, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ArgumentError(name, "num_workers", f"must be an int >= 0, got {num_workers!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.drop_last = drop_last
        self.batch_fetch = batch_fetch
        self.datasets: dict[str, Dataset[Any]] = {}

    def setup(self) -> None:
        """Load or create the datasets (called once per process before fit/test)."""

    def has_split(self, split: str) -> bool:
        """Whether this module has data for ``split``."""
        return split in self.datasets or (split == "predict" and "test" in self.datasets)

    def dataloader(
        self, split: str, *, shuffle: bool = False, sampler: Sampler[Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> DataLoader[Any]:
        """A DataLoader for ``split``; ``sampler`` replaces shuffling when given."""
        return self._loader(self._dataset(split), shuffle=shuffle, sampler=sampler, generator=generator,
                            drop_last=self.drop_last and split == "train")

    def evaluation_dataset(self, split: str) -> Dataset[Any]:
        """``split``'s rows as a model is evaluated on them (prediction).

        Here the split's own dataset; a module whose train dataset augments (random crops, flips)
        returns the train rows under its evaluation transforms.
        """
        return self._dataset(split)

    def ordered_dataloader(self, split: str, *, sampler: Sampler[Any] | None = None) -> DataLoader[Any]:
        """Every row of ``split`` once, in order, as evaluated (:meth:`evaluation_dataset`).

        No shuffling and no dropped last batch, whatever the split; ``sampler`` (the ordered shard
        of one rank among several) picks the positions.
        """
        return self._loader(self.evaluation_dataset(split), shuffle=False, sampler=sampler, generator=None,
                            drop_last=False)

    def _dataset(self, split: str) -> Dataset[Any]:
        """``split``'s dataset (``predict`` without one is the test split)."""
        dataset = self.datasets.get(split) if split != "predict" else self.datasets.get("predict", self.datasets.get("test"))
        if dataset is None:
            raise ValueError(f"{type(self).__name__} has no '{split}' split")
        return dataset

    def _loader(self, dataset: Dataset[Any], *, shuffle: bool, sampler: Sampler[Any] | None,
                generator: torch.Generator | None, drop_last: bool) -> DataLoader[Any]:
        collate: Any = None
        if self.batch_fetch and isinstance(dataset, TensorDataset) and _indexes_whole_batches(dataset):
            dataset, collate = BatchFetchingTensorDataset(*dataset.tensors), _already_collated
        elif self.batch_fetch and isinstance(dataset, BatchDataset):
            dataset, collate = _FetchingBatches(dataset), _already_collated
        return DataLoader(
            dataset,
            collate_fn=collate,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=drop_last,
            generator=generator,
        )


class BatchFetchingTensorDataset(TensorDataset):
    """A :class:`TensorDataset` whose batches are fetched by one indexing operation per tensor.

    ``DataLoader`` calls :meth:`__getitems__` with a batch's indices; the result is the batch that
    the default collate would have stacked from the samples (a list of tensors).
    """

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices)
        return [tensor.index_select(0, index) for tensor in self.tensors]  # twice as fast as tensor[index]


class BatchDataset(Dataset[tuple[torch.Tensor, ...]]):
    """A dataset that makes a whole batch at once: :meth:`fetch` gives the batch of some indices as
    the default collate would have stacked it from the samples (a list of tensors). One sample is a
    batch of one, so the per-sample path (``batch_fetch=False``, a ``Subset``) gives the same values."""

    def __len__(self) -> int:
        raise NotImplementedError

    def fetch(self, indices: Sequence[int]) -> list[torch.Tensor]:
        """The batch of the samples at ``indices``, in their order."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(tensor[0] for tensor in self.fetch([index]))


class _FetchingBatches(Dataset[tuple[torch.Tensor, ...]]):
    """A :class:`BatchDataset` as ``DataLoader`` fetches batches: through ``__getitems__``."""

    def __init__(self, dataset: BatchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        return self.dataset.fetch(indices)


def _indexes_whole_batches(dataset: TensorDataset) -> bool:
    """Whether the dataset is a plain TensorDataset (a subclass with its own ``__getitem__`` keeps
    its per-sample path)."""
    return type(dataset).__getitem__ is TensorDataset.__getitem__ and not hasattr(dataset, "__getitems__")


def check_split_fractions(owner: str, val_fraction: float, test_fraction: float) -> None:
    """Raise :class:`ArgumentError` (of ``owner``) unless both fractions are in [0, 1) and leave rows to train on."""
    for argument, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ArgumentError(owner, argument, f"must be in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ArgumentError(owner, "val_fraction", f"+ test_fraction must be < 1 (nothing left to train "
                                                  f"on), got {val_fraction} + {test_fraction}")


def _already_collated(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


class TensorDataModule(DataModule):
    """Features and targets held as tensors, split train/val/test with a fixed seed.

    Subclasses implement :meth:`load` returning ``(features, target)``. Features are
    standardised with the train split's mean and standard deviation.
    """

    def __init__(
        self, *, val_fraction: float = 0.15, test_fraction: float = 0.15, split_seed: int = 0,
        standardize: bool = True, **loader: Any,
    ) -> None:
        super().__init__(**loader)
        check_split_fractions(type(self).__name__, val_fraction, test_fraction)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.standardize = standardize

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return all features and targets."""
        raise NotImplementedError

    def setup(self) -> None:
        if self.datasets:
            return
        features, target = self.load()
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(self.split_seed))
        n_test = int(round(len(order) * self.test_fraction))
        n_val = int(round(len(order) * self.val_fraction))
        parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
        if self.standardize:
            train = features[parts["train"]]
            mean, std = train.mean(0), train.std(0)
            std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant features: as sklearn's StandardScaler
            features = (features - mean) / std
        self.datasets = {split: TensorDataset(features[idx], target[idx]) for split, idx in parts.items() if len(idx)}
