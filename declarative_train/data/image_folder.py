"""``data=image_folder``: a folder of images, one subfolder per class, as train/val/test datasets.

The folder is scanned and checked in :mod:`.image_scan` (no torchvision needed there); datasets
and transforms come from torchvision (:mod:`.image_files`, imported once torchvision is known to
import). The module reports ``num_classes``, ``class_names``, ``image_shape`` (C, H, W) and
``num_features`` (:meth:`ImageFolderData.data_shapes`), so model configs need no number the
images know.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Subset

from declarative_train.data.image_scan import OWNER, FolderScan, scan_folder
from declarative_train.data.module import DataModule
from declarative_train.data.shapes import adopt_shapes
from declarative_train.errors import ArgumentError, MissingExtra
from declarative_train.utils.extras import try_import

log = logging.getLogger(__name__)

#: Values of the data a model config may need, reported by :meth:`ImageFolderData.data_shapes`.
SHAPE_ARGUMENTS = ("num_classes", "class_names", "image_shape", "num_features")


class ImageFolderData(DataModule):
    """Images under ``root`` (``train/ val/ test/`` of class folders, or class folders split by fractions).

    ``image_size`` (an int or ``[height, width]``) is what the default steps resize to;
    ``train_transforms``/``eval_transforms`` replace those steps (torchvision ``transforms.v2``
    objects, built from ``_target_`` entries); conversion to float and ``Normalize(mean, std)``
    always follow (``mean``/``std`` null: ImageNet's for RGB, 0.5 for one channel). Images become
    one channel when the first image of every class is grayscale, else RGB. Unreadable images are
    an error naming the file, or left out (and counted in the log) with ``skip_bad_files``.
    Shapes left ``None`` are filled from the images; given, they must match them.
    """

    def __init__(
        self, *, root: str, image_size: int | Sequence[int] = 224, train_transforms: list[Any] | None = None,
        eval_transforms: list[Any] | None = None, mean: list[float] | None = None, std: list[float] | None = None,
        val_fraction: float = 0.15, test_fraction: float = 0.15, split_seed: int = 0,
        skip_bad_files: bool = False, num_classes: int | None = None, class_names: list[str] | None = None,
        image_shape: list[int] | None = None, num_features: int | None = None, **loader: Any,
    ) -> None:
        super().__init__(**loader)
        size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise ArgumentError(OWNER, "image_size", f"must be an int >= 1 or [height, width], got {image_size!r}")
        for argument, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise ArgumentError(OWNER, argument, f"must be in [0, 1), got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ArgumentError(OWNER, "val_fraction", f"+ test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        if (mean is None) != (std is None):
            raise ArgumentError(OWNER, "mean", "and data.std must be given together (or both null)")
        self.root, self.image_size = str(root), (size[0], size[1])
        self.train_transforms, self.eval_transforms = train_transforms, eval_transforms
        self.mean, self.std = mean, std
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.skip_bad_files = skip_bad_files
        self.num_classes, self.image_shape, self.num_features = num_classes, image_shape, num_features
        self.class_names = list(class_names) if class_names is not None else None
        self._found: dict[str, Any] = {}
        self._eval_transform: Any = None

    def data_shapes(self) -> dict[str, Any]:
        """What the images say: ``num_classes``, ``class_names``, ``image_shape``, ``num_features``
        and ``task`` (classification). Scans the folder when not set up yet."""
        self.setup()
        return dict(self._found)

    def setup(self) -> None:
        if self.datasets:
            return
        _require_torchvision()
        from declarative_train.data import image_files

        scan = scan_folder(self.root, skip_bad_files=self.skip_bad_files)
        channels = 1 if scan.mode == "L" else 3
        mean, std = image_files.DEFAULT_STATS[channels] if self.mean is None or self.std is None else (self.mean, self.std)
        if len(mean) != channels or len(std) != channels:
            raise ArgumentError(OWNER, "mean", f"and data.std need {channels} values (the images have "
                                               f"{channels} channel{'s' if channels > 1 else ''}), got {mean} and {std}")
        train_steps = self.train_transforms if self.train_transforms is not None else image_files.default_steps(self.image_size, True)
        eval_steps = self.eval_transforms if self.eval_transforms is not None else image_files.default_steps(self.image_size, False)
        train_tf, eval_tf = image_files.pipeline(train_steps, mean, std), image_files.pipeline(eval_steps, mean, std)
        self._eval_transform = eval_tf
        self.datasets = self._split(scan, lambda files: image_files.ImageFiles(files, scan.classes, scan.mode, None),
                                    train_tf, eval_tf)
        self._found = self._shapes(scan)
        adopt_shapes(self, self._found, OWNER, SHAPE_ARGUMENTS, "the images have")
        sizes = ", ".join(f"{split} {len(data)}" for split, data in self.datasets.items())  # type: ignore[arg-type]
        log.info("image folder %s: %d classes (%s), %s images, %s, read as %s", self.root, len(scan.classes),
                 ", ".join(scan.classes)[:200], sizes, "x".join(map(str, self._found["image_shape"])), scan.mode)

    def evaluation_dataset(self, split: str) -> Any:
        """The train rows under the evaluation transforms (no random crop or flip: predictions are
        the same on every pass); the other splits as they are."""
        if split != "train":
            return super().evaluation_dataset(split)
        train: Any = self.datasets["train"]  # a Subset of the files under the train transforms (_split)
        return Subset(train.dataset.with_transform(self._eval_transform), train.indices)

    def _split(self, scan: FolderScan, make: Any, train_tf: Any, eval_tf: Any) -> dict[str, Any]:
        """Each split's dataset: its own folder, or carved from the train folder by fraction with a fixed seed."""
        base = make(scan.samples["train"])
        count = len(base)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        fractions = {split: 0.0 if split in scan.samples else fraction
                     for split, fraction in (("val", self.val_fraction), ("test", self.test_fraction))}
        n_test, n_val = round(count * fractions["test"]), round(count * fractions["val"])
        datasets: dict[str, Any] = {"train": Subset(base.with_transform(train_tf), order[n_test + n_val:])}
        if not len(datasets["train"]):
            raise ArgumentError(OWNER, "val_fraction", f"leaves no training images of {count}")
        for split, rows in (("val", order[n_test:n_test + n_val]), ("test", order[:n_test])):
            if split in scan.samples:
                datasets[split] = make(scan.samples[split]).with_transform(eval_tf)
            elif rows:
                datasets[split] = Subset(base.with_transform(eval_tf), rows)
        return {split: data for split, data in datasets.items() if len(data)}

    def _shapes(self, scan: FolderScan) -> dict[str, Any]:
        """The class list and one sample's shape after the eval transform (so crops are counted)."""
        evaluation = next(self.datasets[split] for split in ("val", "test", "train") if split in self.datasets)
        sample = evaluation[0][0]
        if not isinstance(sample, torch.Tensor) or sample.ndim != 3:
            raise ArgumentError(OWNER, "eval_transforms", f"must give (C, H, W) tensors, got {type(sample).__name__}")
        shape = [int(n) for n in sample.shape]
        return {"num_classes": len(scan.classes), "class_names": list(scan.classes), "image_shape": shape,
                "num_features": shape[0] * shape[1] * shape[2], "task": "classification"}


def _require_torchvision() -> None:
    if try_import("torchvision")[0] is None:
        raise MissingExtra("data=image_folder", "torchvision", "vision", try_import("torchvision")[1])

