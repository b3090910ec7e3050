"""The loaders of each stage: built once, sharded by the distribution, counted by the settings."""

from __future__ import annotations

from typing import Any

from declarative_train.accelerators import Accelerator
from declarative_train.data.loader_workers import bind_to_parent
from declarative_train.data.resumable import ResumableSampler, train_loader
from declarative_train.distributed import Distribution
from declarative_train.engine.batches import fast_dev_run_batches, limit_batches, planned_steps
from declarative_train.engine.settings import TrainerSettings


class StageLoaders:
    """Builds (once, so persistent workers survive epochs) and sizes the loader of each split.

    Overfitting (``overfit_batches``) trains and validates on the same unshuffled batches.
    """

    def __init__(self, data: Any, settings: TrainerSettings, accelerator: Accelerator,
                 distribution: Distribution, seed: int) -> None:
        self.data = data
        self.settings = settings
        self.accelerator = accelerator
        self.distribution = distribution
        self.seed = seed
        self.fast_dev_run = fast_dev_run_batches(settings.fast_dev_run)
        self.overfitting = settings.overfit_batches not in (0, 0.0)
        #: The train loader's sampler when the loader uses it (resuming then skips without loading).
        self.train_sampler: ResumableSampler | None = None
        self._loaders: dict[str, Any] = {}

    def has(self, split: str) -> bool:
        """Whether the stage has data (validation has it when overfitting)."""
        return self.data.has_split(split) or (split == "val" and self.overfitting)

    def get(self, split: str) -> Any:
        """The (cached) loader for ``split``."""
        if split not in self._loaders:
            self._loaders[split] = self._build(split)
        return self._loaders[split]

    def in_order(self, split: str) -> Any:
        """The (cached) loader that serves every row of ``split`` once, in the dataset's order (each
        rank its ordered shard), as evaluated: prediction's loader.

        The evaluation stages' loaders already do; the train stage's shuffles (and under DDP pads
        its shards, and may drop its last batch), so the train split gets a loader of its own from
        the data module's ``ordered_dataloader`` (image folders: the evaluation transforms).
        """
        if split != "train" and not (self.overfitting and split == "val"):
            return self.get(split)
        key = f"{split}, in order"
        if key not in self._loaders:
            ordered = getattr(self.data, "ordered_dataloader", None)
            if ordered is None:  # a data module of one's own, not derived from DataModule
                sampler = self.distribution.sampler(self.data.datasets[split], shuffle=False, seed=self.seed)
                loader = self.data.dataloader(split, shuffle=False, sampler=sampler)
            else:
                sampler = self.distribution.sampler(self.data.evaluation_dataset(split), shuffle=False, seed=self.seed)
                loader = ordered(split, sampler=sampler)
            self._loaders[key] = self._finish(loader)
        return self._loaders[key]

    def count(self, split: str, loader: Any) -> int:
        """Batches the stage runs out of ``loader`` (limits, fractions, ``fast_dev_run``)."""
        if loader is None:
            return 0
        s = self.settings
        if self.fast_dev_run:
            return min(len(loader), self.fast_dev_run)
        if self.overfitting and split in ("train", "val"):
            return limit_batches(len(loader), s.overfit_batches)
        limit = {"train": s.limit_train_batches, "val": s.limit_val_batches, "test": s.limit_test_batches}
        return limit_batches(len(loader), limit.get(split, 1.0))

    def estimated_steps(self, num_train_batches: int) -> int:
        """Optimizer steps fit will take (for schedulers that need the total, like OneCycle)."""
        steps = planned_steps(num_train_batches, self.settings, self.fast_dev_run)
        if steps is None or (steps == 0 and self.settings.max_steps < 0):
            return 1  # unbounded, or no epochs: schedulers still need a positive total
        return steps

    def _build(self, split: str) -> Any:
        if self.overfitting and split == "val":
            split = "train"  # overfitting validates on the very batches it trains on
        shuffle = split == "train" and not self.overfitting
        datasets = self.data.datasets
        sampler = self.distribution.sampler(datasets[split], shuffle=shuffle, seed=self.seed) \
            if split in datasets else None
        if split != "train":
            loader = self.data.dataloader(split, shuffle=shuffle, sampler=sampler)
        else:
            # Under DDP the order comes from the distributed sampler; this seed then only seeds the
            # DataLoader workers, which should differ per rank (augmentations).
            loader, self.train_sampler = train_loader(self.data, sampler, shuffle=shuffle,
                                                      seed=self.seed + self.distribution.rank)
        return self._finish(loader)

    def _finish(self, loader: Any) -> Any:
        bind_to_parent(loader)
        return self.accelerator.wrap_loader(loader)
