"""``data=table``: a CSV, TSV, Parquet or JSON Lines file as train/val/test tensors.

Reading is in :mod:`.table_read`, the encodings in :mod:`.table_encode`, encoding the columns and
the split datasets in :mod:`.table_splits`; this module checks the columns, handles missing values,
splits the rows, holds every split as a :class:`~.table_splits.TableSplit` (its batches are made
from the encoded columns when fetched) and reports what it found (:meth:`TableData.data_shapes`)
so that model configs need no number the data knows.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from declarative_train.data.module import DataModule
from declarative_train.data.shapes import adopt_shapes
from declarative_train.data.table_arrays import one_array, pool_array
from declarative_train.data.table_encode import (
    ColumnCode,
    TargetCode,
    check_encodable,
    check_table_options,
    encode_columns,
    target_shapes,
)
from declarative_train.data.table_read import (
    OWNER,
    ParquetColumns,
    check_flat,
    check_predict_columns,
    complete_rows,
    missing_count,
    missing_counts,
    pyarrow_module,
    read_table,
    select_columns,
)
from declarative_train.data.table_splits import (
    TableSplit,
    encode_features,
    encode_targets,
    file_order,
)
from declarative_train.errors import ArgumentError
from declarative_train.utils.text import did_you_mean

log = logging.getLogger(__name__)

#: Values of the data a model config may need, reported by :meth:`TableData.data_shapes`.
SHAPE_ARGUMENTS = ("num_features", "num_classes", "class_names", "target_width")


class TableData(DataModule):
    """Features and a target column from one table file (split by fractions) or one file per split.

    ``num_features``, ``num_classes``, ``class_names`` and ``target_width`` are left ``None`` to
    be filled from the data (the builder does so before the model is built); given, they must
    match what the data holds. Regression targets are standardised with the train split's mean
    and standard deviation (``target_mean``/``target_std`` after :meth:`setup`) unless
    ``standardize_target`` is false.

    ``predict_path`` names a file in the same format to predict on (the ``predict`` split): its
    target column may be absent, the train split's encodings are applied to it, and it must hold
    every feature column. ``id_column`` names a column copied through to predictions
    (:meth:`row_ids`); it stays an input when it is a feature column (leave it out with ``drop``).
    """

    def __init__(
        self, *, target: str, path: str | None = None, train_path: str | None = None,
        val_path: str | None = None, test_path: str | None = None, format: str | None = None,
        features: list[str] | None = None, drop: list[str] | None = None, task: str = "auto",
        fill_missing: str | None = None, standardize: bool = True, standardize_target: bool = True,
        max_categories: int = 100, val_fraction: float = 0.15, test_fraction: float = 0.15,
        split_seed: int = 0, num_features: int | None = None, num_classes: int | None = None,
        class_names: list[str] | None = None, target_width: int | None = None,
        predict_path: str | None = None, id_column: str | None = None, **loader: Any,
    ) -> None:
        super().__init__(**loader)
        if path is None and train_path is None:
            raise ArgumentError(OWNER, "path", "is not set: give data.path=FILE (or data.train_path=FILE)")
        if path is not None and any(p is not None for p in (train_path, val_path, test_path)):
            raise ArgumentError(OWNER, "path", "and data.train_path/val_path/test_path are both set: use one")
        check_table_options(OWNER, task=task, fill_missing=fill_missing, val_fraction=val_fraction,
                            test_fraction=test_fraction)
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 1:
            raise ArgumentError(OWNER, "max_categories", f"must be an int >= 1, got {max_categories!r}")
        self.target, self.format = target, format
        self.files = {"path": path, "train_path": train_path, "val_path": val_path, "test_path": test_path}
        self.features, self.drop = (list(features) if features is not None else None), list(drop or [])
        self.task, self.fill_missing = task, fill_missing
        self.standardize, self.standardize_target = standardize, standardize_target
        self.max_categories = max_categories
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.num_features, self.num_classes, self.target_width = num_features, num_classes, target_width
        self.class_names = list(class_names) if class_names is not None else None
        self.predict_path, self.id_column = predict_path, id_column
        self.columns: list[ColumnCode] = []
        self.target_code: TargetCode | None = None
        self._found: dict[str, Any] = {}
        self._ids: dict[str, Any] = {}  # per split: a list, or a numpy or Arrow array made a list when asked

    @property
    def target_mean(self) -> float:
        """The regression target's train mean (0 when not standardised or for classification)."""
        return self.target_code.mean if self.target_code is not None else 0.0

    @property
    def target_std(self) -> float:
        """The regression target's train standard deviation (1 when not standardised)."""
        return self.target_code.std if self.target_code is not None else 1.0

    def data_shapes(self) -> dict[str, Any]:
        """What the data says: ``num_features``, ``task`` and ``num_classes``/``class_names``
        (classification) or ``target_width`` (regression). Reads the data when not set up yet."""
        self.setup()
        return dict(self._found)

    def row_ids(self, split: str) -> tuple[str, list[Any]]:
        """``(name, values)`` naming each row of ``split`` (``predict`` falls back to ``test``, as
        :meth:`has_split` does): the ``id_column``'s values, else ``row``, the row's index in its file."""
        self.setup()
        if split == "predict" and split not in self._ids:
            split = "test"
        if split not in self._ids:
            raise ValueError(f"TableData has no '{split}' split")
        if not isinstance(self._ids[split], list):
            values = self._ids[split]
            self._ids[split] = values.tolist() if isinstance(values, np.ndarray) else values.to_pylist()
        return self.id_column or "row", self._ids[split]

    def setup(self) -> None:
        if self.datasets:
            return
        tables, source = self._read()
        columns = self._check_columns(tables, source)
        kept: dict[str, np.ndarray | None] = dict.fromkeys(tables)  # per table: the file index of each row left
        if self.fill_missing == "drop":
            for name in list(tables):
                tables[name], kept[name] = self._drop_missing(tables[name], columns, name)
        with ThreadPoolExecutor(1, thread_name_prefix="table-target") as helper:
            # The target is read on a helper thread while this one splits the rows (a random permutation).
            reading = helper.submit(self._read_target, tables)
            parts, train_rows = self._split({name: table.num_rows for name, table in tables.items()})
            target = reading.result()
            # The target is encoded on the helper thread while the features are.
            encoding = helper.submit(encode_targets, target, train_rows, self.target, self.task,
                                     standardize=self.standardize_target, source=source)
            ids = {name: self._id_values(table, kept[name]) for name, table in tables.items()
                   if self.id_column is None or self.id_column in table.column_names}
            kinds = {name: tables["train"].schema.field(name).type for name in columns}
            sources = {name: table if isinstance(table, ParquetColumns) else {c: table.column(c) for c in columns}
                       for name, table in tables.items()}
            del tables  # from here on each column is dropped once encoded
            self.columns, encoded = encode_features(sources, {name: len(column) for name, column in target.items()},
                                                    train_rows, columns, kinds, fill_missing=self.fill_missing,
                                                    standardize=self.standardize, max_categories=self.max_categories)
            self.target_code, targets = encoding.result()
        del target
        self.datasets = {split: TableSplit(encoded[table], targets[table], rows)
                         for split, (table, rows) in parts.items() if len(rows)}
        self._ids = {split: rows if ids[table] is None else ids[table].take(rows)
                     for split, (table, rows) in parts.items() if table in ids and len(rows)}
        if self.predict_path is not None:
            self.datasets["predict"], self._ids["predict"] = self._predict_split(columns)
        self._found = self._shapes()
        adopt_shapes(self, self._found, OWNER, SHAPE_ARGUMENTS)
        self._log(source, columns, {split: len(rows) for split, (_, rows) in parts.items()})

    def _read_target(self, tables: dict[str, Any]) -> dict[str, Any]:
        """Each table's target column in one piece (the pool's memory is handed back only where no
        piece of any column is left); a missing value is an error."""
        target = {name: _one_chunk(table.column(self.target)) for name, table in tables.items()}
        for column in target.values():
            if gaps := missing_count(column):
                raise ArgumentError(OWNER, "fill_missing", f"the target column {self.target!r} misses {gaps} of "
                                                           f"{len(column)} values: a target cannot be filled; use "
                                                           f"data.fill_missing=drop")
        return target

    def _check_columns(self, tables: dict[str, Any], source: str) -> list[str]:
        """The feature columns, once the files hold them (and the target and id columns) in a kind that is read."""
        columns = select_columns(tables["train"], self.target, self.features, self.drop, source)
        check_flat(tables["train"], columns)
        for split, names in {split: table.column_names for split, table in tables.items()}.items():
            lacking = [c for c in (*columns, self.target) if c not in names]
            if lacking:
                raise ArgumentError(OWNER, f"{split}_path", f"the file lacks the columns {lacking}")
        self._check_id_column(tables, columns, source)
        return columns

    def _id_values(self, table: Any, kept: np.ndarray | None) -> Any:
        """The id of each row of ``table`` (a numpy or Arrow array): the id column's values, or the
        row's index in its file (``kept``: of the rows left); ``None`` where that is the row's index."""
        return kept if self.id_column is None else table.column(self.id_column)

    def _check_id_column(self, tables: dict[str, Any], columns: list[str], source: str) -> None:
        """The id column must be in the table that serves ``test`` (and so ``predict`` without a file)."""
        name = self.id_column
        if name is None:
            return
        test = tables.get("test", tables["train"])
        if self.predict_path is None and name not in test.column_names:
            file = Path(str(self.files["test_path"])).name if "test" in tables else source
            raise ArgumentError(OWNER, "id_column", f"{name!r} is not a column of {file}."
                                                    f"{did_you_mean(name, test.column_names)}")
        if name in columns:
            log.warning("data.id_column %r is also a model input; leave it out with data.drop=[%s] when training",
                        name, name)

    def _predict_split(self, columns: list[str]) -> tuple[TensorDataset, list[Any]]:
        """The ``predict`` split (dataset, row ids) from ``predict_path``, with the train split's encodings."""
        assert self.predict_path is not None
        table = read_table(self.predict_path, self.format, "predict_path")
        source = Path(self.predict_path).name
        if not table.num_rows:
            raise ArgumentError(OWNER, "predict_path", f"{source} has no rows to predict")
        check_predict_columns(table, columns, target=self.target, id_column=self.id_column, drop=self.drop,
                              listed=self.features is not None, source=source)
        check_encodable(table, self.columns, "predict_path", source)
        counts = missing_counts(table, columns)
        if counts and self.fill_missing not in ("mean", "zero"):
            listed = ", ".join(f"{name!r} ({count} of {table.num_rows})" for name, count in counts.items())
            raise ArgumentError(OWNER, "predict_path", f"{source} misses values in {listed}: every row needs a "
                                                       f"prediction, so rows are not dropped; fill them with "
                                                       f"data.fill_missing=mean|zero")
        ids = table.column(self.id_column).to_pylist() if self.id_column is not None else list(range(table.num_rows))
        log.info("predict file %s: %d rows", source, table.num_rows)
        return TensorDataset(torch.from_numpy(encode_columns(table, self.columns))), ids

    def _read(self) -> tuple[dict[str, Any], str]:
        """The tables by split (``train`` alone when one file is split by fractions), and a name for messages.

        A Parquet file is read a column at a time while others are encoded, unless rows with missing
        values are dropped (which needs every column first)."""
        by_column = self.fill_missing != "drop"
        path = self.files["path"]
        if path is not None:
            return {"train": read_table(path, self.format, by_column=by_column)}, Path(path).name
        tables = {split: read_table(file, self.format, f"{split}_path", by_column=by_column)
                  for split in ("train", "val", "test") if (file := self.files[f"{split}_path"]) is not None}
        return tables, Path(str(self.files["train_path"])).name

    def _drop_missing(self, table: Any, columns: list[str], split: str) -> tuple[Any, np.ndarray | None]:
        """``fill_missing=drop``: the rows of ``table`` with every column's value and their indices in
        the file (``None``: every row)."""
        if not missing_counts(table, [*columns, self.target]):
            return table, None
        complete = complete_rows(table, [*columns, self.target])
        kept = table.filter(complete)
        log.info("data.fill_missing=drop: dropped %d of %d rows of the %s file with missing values",
                 table.num_rows - kept.num_rows, table.num_rows, split)
        return kept, np.flatnonzero(np.asarray(complete.to_numpy(zero_copy_only=False)))

    def _split(self, rows: dict[str, int]) -> tuple[dict[str, tuple[str, np.ndarray]], np.ndarray]:
        """Each split's ``(table name, row indices)`` and the train split's rows in file order, from
        each table's ``rows``; splits without a file are carved from the train table by their
        fraction with a fixed seed, as :class:`TensorDataModule` does."""
        fractions = {split: 0.0 if split in rows else fraction
                     for split, fraction in (("val", self.val_fraction), ("test", self.test_fraction))}
        count = rows["train"]
        order = pool_array(count, np.int64)  # fewer page faults than torch's own memory
        torch.randperm(count, generator=torch.Generator().manual_seed(self.split_seed), out=torch.from_numpy(order))
        n_test = int(round(count * fractions["test"]))
        n_val = int(round(count * fractions["val"]))
        parts = {"train": ("train", order[n_test + n_val:])}
        for split, taken in (("val", order[n_test:n_test + n_val]), ("test", order[:n_test])):
            parts[split] = (split, np.arange(rows[split])) if split in rows else ("train", taken)
        if not len(parts["train"][1]):
            raise ArgumentError(OWNER, "val_fraction", f"leaves no training rows of {count}")
        return parts, file_order(parts["train"][1], count)

    def _shapes(self) -> dict[str, Any]:
        code = self.target_code
        assert code is not None
        found: dict[str, Any] = {"num_features": sum(c.width for c in self.columns), **target_shapes(code)}
        return found


    def _log(self, source: str, columns: list[str], sizes: dict[str, int]) -> None:
        code = self.target_code
        assert code is not None
        texts = [f"{c.name!r} ({len(c.categories)})" for c in self.columns if c.categories is not None]
        log.info("table %s: rows train %d, val %d, test %d; %d feature columns -> %d inputs%s", source,
                 sizes["train"], sizes["val"], sizes["test"], len(columns), self._found["num_features"],
                 f" (one-hot text columns: {', '.join(texts)})" if texts else "")
        detail = (f"{len(code.class_values or ())} classes: {', '.join(code.class_names or [])[:200]}"
                  if code.task == "classification" else "standardised" if self.standardize_target else "raw")
        log.info("target %r: %s, because %s (%s)", code.name, code.task, code.reason, detail)


def _one_chunk(column: Any) -> Any:
    """A ``ChunkedArray`` in one chunk (a copy only when it has several)."""
    return column if column.num_chunks == 1 else pyarrow_module().chunked_array([one_array(column)], type=column.type)
