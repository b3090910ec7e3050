"""``data=hf``: a Hugging Face dataset on disk as train/val/test tensors.

Loading (local only) is in :mod:`.hf_load`. Inputs are encoded as ``data=table`` encodes its
columns (:mod:`.table_encode`: numbers standardised, text and ``ClassLabel`` inputs one-hot);
fixed-shape array columns (pixels, embeddings) are flattened and standardised per element. Every
split is held as a ``TensorDataset`` and :meth:`HFData.data_shapes` reports what the data says, so
model configs need no number the data knows.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from declarative_train.data.hf_load import (
    OWNER,
    ArrayCode,
    as_ours,
    check_builder,
    check_columns,
    choose_splits,
    column_kind,
    datasets_module,
    fit_array,
    load,
    read_array,
)
from declarative_train.data.module import DataModule
from declarative_train.data.shapes import adopt_shapes
from declarative_train.data.table_encode import (
    ColumnCode,
    TargetCode,
    check_table_options,
    encode_columns,
    encode_target,
    fit_columns,
    fit_target,
    target_shapes,
)
from declarative_train.data.table_read import OWNER as TABLE_OWNER
from declarative_train.data.table_read import drop_missing_rows, missing_counts
from declarative_train.errors import ArgumentError

log = logging.getLogger(__name__)

#: Values of the data a model config may need, reported by :meth:`HFData.data_shapes`.
SHAPE_ARGUMENTS = ("num_features", "num_classes", "class_names", "target_width", "image_shape")
_ROW = "__hf_row__"


class HFData(DataModule):
    """Inputs and a target column of a Hugging Face dataset saved on disk (``path``) or read from
    local files (``builder`` + ``data_files``); nothing is downloaded.

    Splits by name (``splits``: ``{train: train, val: validation, test: test}``; by default
    ``train``, ``validation``/``val``/``valid``/``dev`` and ``test`` are recognised); a split the
    dataset lacks is carved from the train split by ``val_fraction``/``test_fraction`` with
    ``split_seed``. ``num_features``, ``num_classes``, ``class_names``, ``target_width`` and
    ``image_shape`` are left ``None`` to be filled from the data; given, they must match it.
    """

    def __init__(
        self, *, target: str, path: str | None = None, builder: str | None = None, data_files: Any = None,
        inputs: str | list[str] | None = None, splits: Mapping[str, str] | None = None, task: str = "auto",
        fill_missing: str | None = None, standardize: bool = True, standardize_target: bool = True,
        max_categories: int = 100, val_fraction: float = 0.15, test_fraction: float = 0.15, split_seed: int = 0,
        cache_dir: str | None = None, num_features: int | None = None, num_classes: int | None = None,
        class_names: list[str] | None = None, target_width: int | None = None, image_shape: list[int] | None = None,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        if (path is None) == (builder is None):
            raise ArgumentError(OWNER, "path", "and data.builder are both set: use one" if path is not None else
                                "is not set: give data.path=DIR (a dataset saved with save_to_disk) or "
                                "data.builder=csv|json|parquet|arrow with data.data_files=FILES")
        check_builder(builder, data_files)
        check_table_options(OWNER, task=task, fill_missing=fill_missing, val_fraction=val_fraction,
                            test_fraction=test_fraction)
        self.target, self.path, self.builder, self.data_files, self.cache_dir = target, path, builder, data_files, cache_dir
        self.inputs = [inputs] if isinstance(inputs, str) else (list(inputs) if inputs is not None else None)
        self.splits = dict(splits) if splits is not None else None
        self.task, self.fill_missing, self.max_categories = task, fill_missing, max_categories
        self.standardize, self.standardize_target = standardize, standardize_target
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.num_features, self.num_classes, self.target_width = num_features, num_classes, target_width
        self.class_names = list(class_names) if class_names is not None else None
        self.image_shape = list(image_shape) if image_shape is not None else None
        self.codes: list[ColumnCode | ArrayCode] = []
        self.target_code: TargetCode | None = None
        self._label_target = False
        self._found: dict[str, Any] = {}

    def data_shapes(self) -> dict[str, Any]:
        """What the data says: ``num_features``, ``task``, ``num_classes``/``class_names``
        (classification) or ``target_width`` (regression), and ``image_shape`` when the one input
        is a 2-D or 3-D array. Loads the data when not set up yet."""
        self.setup()
        return dict(self._found)

    def setup(self) -> None:
        if self.datasets:
            return
        source = self.path if self.path is not None else f"{self.builder} files"
        splits = load(self.path, self.builder, self.data_files, self.cache_dir)
        chosen = choose_splits(list(splits), self.splits)
        train = splits[chosen["train"]]
        inputs = check_columns(list(train.column_names), self.inputs, self.target)
        kinds = {name: column_kind(train.features[name]) for name in [*inputs, self.target]}
        bad = [f"{name!r} ({train.features[name]})" for name in inputs if kinds[name] == "other"]
        if bad:
            raise ArgumentError(OWNER, "inputs", f"holds columns that are neither numbers, text, class labels nor "
                                                 f"fixed-shape arrays: {', '.join(bad)}; leave them out of data.inputs")
        if kinds[self.target] in ("array", "other"):
            raise ArgumentError(OWNER, "target", f"column {self.target!r} holds {train.features[self.target]}, "
                                                 f"not one number, text or class label per row")
        for ours, theirs in chosen.items():
            lacking = [c for c in (*inputs, self.target) if c not in splits[theirs].column_names]
            if lacking:
                raise ArgumentError(OWNER, "splits", f"the split {theirs!r} ({ours}) lacks the columns {lacking}")
        parts = self._carve(splits, chosen)
        columns = {split: self._columns(part, inputs, kinds, split) for split, part in parts.items()}
        self._fit(columns["train"], inputs, kinds, train.features[self.target], [c[0] for c in columns.values()], source)
        self.datasets = {split: TensorDataset(*self._encode(*columns[split]))
                         for split in parts if columns[split][0].num_rows}
        self._found = self._shapes()
        adopt_shapes(self, self._found, OWNER, SHAPE_ARGUMENTS)
        self._log(source, chosen, inputs, {split: c[0].num_rows for split, c in columns.items()})

    def _carve(self, splits: dict[str, Any], chosen: dict[str, str]) -> dict[str, Any]:
        """Each split as a dataset: named ones as they are; the others carved from train with a fixed
        seed, as :class:`~declarative_train.data.table.TableData` does."""
        train = splits[chosen["train"]]
        fractions = {split: 0.0 if split in chosen else fraction
                     for split, fraction in (("val", self.val_fraction), ("test", self.test_fraction))}
        count = len(train)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        n_test, n_val = int(round(count * fractions["test"])), int(round(count * fractions["val"]))
        if count - n_test - n_val < 1:
            raise ArgumentError(OWNER, "val_fraction", f"leaves no training rows of {count}")
        if not n_test and not n_val:
            parts = {"train": train}
        else:
            parts = {"train": train.select(order[n_test + n_val:]), "val": train.select(order[n_test:n_test + n_val]),
                     "test": train.select(order[:n_test])}
        parts.update({split: splits[name] for split, name in chosen.items() if split != "train"})
        return parts

    def _columns(self, dataset: Any, inputs: list[str], kinds: dict[str, str],
                 split: str) -> tuple[Any, dict[str, np.ndarray]]:
        """One split's scalar columns (and the target) as an arrow table, its array columns as numpy
        arrays; rows missing values dropped (``fill_missing=drop``) or refused."""
        import pyarrow as pa
        import pyarrow.compute as pc

        scalars = [name for name in [*inputs, self.target] if kinds[name] != "array"]
        table = dataset.select_columns(scalars).with_format("arrow")[:]
        for name in inputs:
            if kinds[name] == "label":  # class names one-hot, not their indices as numbers
                index = table.column(name)
                names = pa.array(dataset.features[name].names, type=pa.string())
                table = table.set_column(table.schema.get_field_index(name), name,
                                         pc.take(names, pc.if_else(pc.less(index, 0), None, index)))
        arrays = {}
        for name in inputs:
            if kinds[name] == "array":
                arrays[name] = read_array(dataset, name, split)
        if kinds[self.target] == "label" and table.num_rows and pc.min(table.column(self.target)).as_py() < 0:
            raise ArgumentError(OWNER, "target", f"column {self.target!r} has rows without a label (-1) in the "
                                                 f"{split} split")
        return self._handle_missing(table, arrays, scalars, split)

    def _handle_missing(self, table: Any, arrays: dict[str, np.ndarray], scalars: list[str],
                        split: str) -> tuple[Any, dict[str, np.ndarray]]:
        counts = missing_counts(table, scalars)
        if not counts:
            return table, arrays
        if self.fill_missing == "drop":
            import pyarrow as pa

            kept = drop_missing_rows(table.append_column(_ROW, pa.array(np.arange(table.num_rows))), scalars)
            rows = kept.column(_ROW).to_numpy()
            log.info("data.fill_missing=drop: dropped %d of %d rows of the %s split with missing values",
                     table.num_rows - len(rows), table.num_rows, split)
            return kept.drop_columns([_ROW]), {name: values[rows] for name, values in arrays.items()}
        listed = ", ".join(f"{name!r} ({count} of {table.num_rows})" for name, count in counts.items())
        if self.target in counts:
            raise ArgumentError(OWNER, "fill_missing", f"the target column {self.target!r} misses values in the "
                                                       f"{split} split: a target cannot be filled; use data.fill_missing=drop")
        if self.fill_missing is None:
            raise ArgumentError(OWNER, "fill_missing", f"is not set, and columns of the {split} split miss values: "
                                                       f"{listed}; set data.fill_missing=mean|zero|drop")
        return table, arrays

    def _fit(self, train: tuple[Any, dict[str, np.ndarray]], inputs: list[str], kinds: dict[str, str],
             target_feature: Any, tables: list[Any], source: str) -> None:
        """Encodings fitted on the train split's rows; target classes from every split."""
        table, arrays = train
        with as_ours(TABLE_OWNER):
            scalar = fit_columns(table, [n for n in inputs if n not in arrays], fill_missing=self.fill_missing,
                                 standardize=self.standardize, max_categories=self.max_categories)
            self._label_target = kinds[self.target] == "label" and self.task != "regression"
            if self._label_target:
                names = tuple(str(n) for n in target_feature.names)
                self.target_code = TargetCode(self.target, "classification", "the target is a ClassLabel",
                                              class_values=names)
            else:
                self.target_code = fit_target([t.column(self.target) for t in tables], table.column(self.target),
                                              self.target, self.task, standardize=self.standardize_target,
                                              source=source)
        by_name = {code.name: code for code in scalar}
        self.codes = [by_name[name] if name in by_name else fit_array(name, arrays[name], self.standardize) for name in inputs]

    def _encode(self, table: Any, arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.target_code is not None
        blocks = []
        for code in self.codes:
            if isinstance(code, ArrayCode):
                values = arrays[code.name]
                if tuple(values.shape[1:]) != code.shape:
                    raise ArgumentError(OWNER, "inputs", f"column {code.name!r} holds arrays of shape "
                                                         f"{tuple(values.shape[1:])} in one split and {code.shape} in train")
                blocks.append(((values.reshape(len(values), -1) - code.mean) / code.std).astype(np.float32))
            else:
                blocks.append(encode_columns(table, [code]))
        if self._label_target:  # ClassLabel indices are the classes already
            target = table.column(self.target).to_numpy().astype(np.int64)
        else:
            target = encode_target(table.column(self.target), self.target_code)
        return torch.from_numpy(np.concatenate(blocks, axis=1)), torch.from_numpy(np.require(target, requirements="W"))

    def _shapes(self) -> dict[str, Any]:
        code = self.target_code
        assert code is not None
        found: dict[str, Any] = {"num_features": sum(c.width for c in self.codes), **target_shapes(code)}
        only = self.codes[0] if len(self.codes) == 1 else None
        if isinstance(only, ArrayCode) and len(only.shape) in (2, 3):
            found["image_shape"] = [1, *only.shape] if len(only.shape) == 2 else list(only.shape)
        return found


    def _log(self, source: str, chosen: dict[str, str], inputs: list[str], sizes: dict[str, int]) -> None:
        code = self.target_code
        assert code is not None
        named = ", ".join(f"{ours}={theirs}" for ours, theirs in chosen.items())
        log.info("hf dataset %s (splits %s): rows train %d, val %d, test %d; %d input columns -> %d inputs%s",
                 source, named, sizes.get("train", 0), sizes.get("val", 0), sizes.get("test", 0), len(inputs),
                 self._found["num_features"],
                 f", image_shape {self._found['image_shape']}" if "image_shape" in self._found else "")
        detail = (f"{len(code.class_values or ())} classes: {', '.join(code.class_names or [])[:200]}"
                  if code.task == "classification" else "standardised" if self.standardize_target else "raw")
        log.info("target %r: %s, because %s (%s)", code.name, code.task, code.reason, detail)


class HFDigits(HFData):
    """``data=hf`` over sklearn's bundled digits saved at ``path`` (written when missing): an 8x8
    ``pixels`` array column and a ``ClassLabel`` ``label``, in ``train`` and ``test`` splits."""

    def __init__(self, *, path: str, target: str = "label", **kwargs: Any) -> None:
        super().__init__(path=path, target=target, **kwargs)

    def setup(self) -> None:
        if not self.datasets and not Path(str(self.path)).exists():
            save_digits(str(self.path))
        super().setup()


def save_digits(path: str) -> None:
    """sklearn's digits as a ``DatasetDict`` (test: a fifth, seed 0) written with ``save_to_disk``."""
    from declarative_train.data.sklearn_data import load_digits_arrays

    datasets = datasets_module()
    pixels, labels = load_digits_arrays()
    features = datasets.Features({"pixels": datasets.Array2D((8, 8), "float32"),
                                  "label": datasets.ClassLabel(num_classes=10)})
    data = datasets.Dataset.from_dict({"pixels": pixels.reshape(-1, 8, 8).astype(np.float32), "label": labels},
                                      features=features)
    folder = Path(path)
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    data.train_test_split(test_size=0.2, seed=0).save_to_disk(str(partial))
    try:
        os.replace(partial, folder)
    except OSError:  # another rank or run wrote it first
        shutil.rmtree(partial, ignore_errors=True)
