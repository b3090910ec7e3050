"""A table's splits as tensors: each feature column fitted on the train rows and encoded for every
split, one column at a time, then each split's matrix assembled once (:mod:`.table_matrix`).

A split is a table (one file) and the indices of its rows in the split's order. Each column is
removed from the tables' column dicts as soon as it is encoded, so its Arrow buffers are freed
while the next ones are encoded; what is left per split is about its share of the encoded matrix
(float32 numbers, small integer category codes) until the matrix is assembled. No row-major copy
of a whole table, of the train rows or of a split is made on the way.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from declarative_train.data.table_arrays import float_values
from declarative_train.data.table_encode import (
    ColumnCode,
    TargetCode,
    category_codes,
    encode_target,
    fit_complete_numeric,
    fit_numeric,
    fit_target,
    fit_text,
    is_text,
    layout,
)
from declarative_train.data.table_matrix import assemble, code_type, standardize_into
from declarative_train.data.table_read import pyarrow_module, worker_threads

#: ``{split: (table name, row indices in the split's order)}``; the train split's table is ``"train"``.
Parts = Mapping[str, tuple[str, np.ndarray]]
#: ``{split: (standardised numeric columns (columns, rows) float32, text category indices (columns, rows))}``
Encoded = dict[str, tuple[np.ndarray, np.ndarray]]


def encode_features(tables: dict[str, dict[str, Any]], parts: Parts, names: Sequence[str], *,
                    fill_missing: str | None, standardize: bool, max_categories: int,
                    incomplete: Collection[str]) -> tuple[list[ColumnCode], Encoded]:
    """The fitted encodings of the feature columns ``names`` and each split's encoded columns (for
    :func:`assemble_inputs`).

    ``tables`` maps a table name to its columns by name; the feature columns are removed from it.
    ``incomplete`` names the columns that miss values in some table. Columns are encoded on a few
    threads (numpy and pyarrow release the GIL in their loops).
    """
    text = [name for name in names if is_text(tables["train"][name].type)]
    numeric = [name for name in names if name not in text]
    numbers = {split: np.empty((len(numeric), len(rows)), np.float32) for split, (_, rows) in parts.items()}
    codes = {split: np.empty((len(text), len(rows)), code_type(max_categories)) for split, (_, rows) in parts.items()}
    pyarrow = pyarrow_module()
    pool = pyarrow.default_memory_pool()
    pool.release_unused()  # what reading the file freed
    scratch = _Scratch()

    def encode(name: str) -> ColumnCode:
        columns = {table: columns.pop(name) for table, columns in tables.items()}
        if name in text:
            code = _encode_text(name, columns, parts, codes, text.index(name), max_categories)
        else:
            code = _encode_numbers(name, columns, parts, numbers, numeric.index(name), fill_missing=fill_missing,
                                   standardize=standardize, complete=name not in incomplete, scratch=scratch)
        del columns
        # The column's buffers, where no other column shares their pages. mimalloc (pyarrow's pool)
        # hands pages back only in a thread that has allocated from it: hence the tiny buffer.
        pyarrow.allocate_buffer(64, memory_pool=pool)
        pool.release_unused()
        return code

    with ThreadPoolExecutor(worker_threads()) as workers:
        # text first: its temporaries come before the numeric columns' pages of ``numbers`` are touched
        by_name = dict(zip(text + numeric, workers.map(encode, text + numeric)))
    fitted = [by_name[name] for name in names]
    pool.release_unused()
    return fitted, {split: (numbers[split], codes[split]) for split in parts}


def assemble_inputs(fitted: Sequence[ColumnCode], encoded: Encoded) -> dict[str, torch.Tensor]:
    """Each split's float32 input matrix from its encoded columns, which are dropped from ``encoded`` as it goes."""
    width, number_columns, code_offsets = layout(fitted)
    inputs = {}
    for split in list(encoded):  # the train split (the largest) first, then its columns go
        numbers, codes = encoded.pop(split)
        inputs[split] = torch.from_numpy(assemble(codes.shape[1], width, numbers, number_columns, codes, code_offsets,
                                                  threads=worker_threads()))
    return inputs


def _encode_text(name: str, columns: dict[str, Any], parts: Parts, codes: dict[str, np.ndarray], index: int,
                 max_categories: int) -> ColumnCode:
    """Fit the text column ``name`` on the train rows and write its category indices as row ``index``
    of each split's ``codes``."""
    code, train_codes = fit_text(name, columns["train"], parts["train"][1], max_categories)
    by_table = {table: train_codes if table == "train" else category_codes(column, code)
                for table, column in columns.items()}
    for split, (table, rows) in parts.items():
        if by_table[table].dtype == codes[split].dtype:
            np.take(by_table[table], rows, out=codes[split][index], mode="clip")
        else:
            codes[split][index] = by_table[table].take(rows)
    return code


def _encode_numbers(name: str, columns: dict[str, Any], parts: Parts, numbers: dict[str, np.ndarray], index: int, *,
                    fill_missing: str | None, standardize: bool, complete: bool, scratch: _Scratch) -> ColumnCode:
    """Fit the numeric column ``name`` on the train rows and write it, standardised, as row ``index``
    of each split's ``numbers``. A ``complete`` column (no value missing in any table) takes the
    path without NaN checks and temporaries, in this thread's ``scratch``."""
    # The train table's column in this thread's scratch when it comes in chunks (a CSV file's parts).
    # The scratch is made for single-chunk columns too, unused: measured, the Parquet peak is then
    # 251 MiB instead of 273 (bench table; likely glibc's mmap threshold), so it is kept.
    values = {table: float_values(column, scratch.values(len(column)) if table == "train" else None)
              for table, column in columns.items()}
    if not (complete and standardize):
        train = values["train"].take(parts["train"][1])  # in the train split's order, as the statistics need
        code = fit_numeric(name, train, fill_missing=fill_missing, standardize=standardize)
        for split, (table, rows) in parts.items():
            taken = train if split == "train" else values[table].take(rows)
            standardize_into(taken, code.mean, code.std, code.fill, numbers[split][index])
        return code
    deviations, squares = scratch.buffers(max(len(rows) for _, rows in parts.values()))
    # mode="clip" (the rows are in range): with "raise", numpy gathers into a copy of ``out``
    train = np.take(values["train"], parts["train"][1], out=deviations[:len(parts["train"][1])], mode="clip")
    code = fit_complete_numeric(name, train, squares[:len(train)], fill_missing=fill_missing, standardize=True)
    numbers["train"][index] = np.divide(train, code.std, out=train)  # computed in float64, rounded to float32
    for split, (table, rows) in parts.items():
        if split != "train":
            taken = np.take(values[table], rows, out=deviations[:len(rows)], mode="clip")
            numbers[split][index] = np.divide(np.subtract(taken, code.mean, out=taken), code.std, out=taken)
    return code


class _Scratch(threading.local):
    """Float64 arrays per thread, kept from column to column (fresh memory is slow to touch)."""

    def buffers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Two arrays of at least ``size`` values: the train rows' deviations and their squares."""
        held = getattr(self, "held", None)
        if held is None or len(held[0]) < size:
            self.held = held = (np.empty(size, np.float64), np.empty(size, np.float64))
        return held

    def values(self, size: int) -> np.ndarray:
        """An array of at least ``size`` values: a column in file order."""
        column = getattr(self, "column", None)
        if column is None or len(column) < size:
            self.column = column = np.empty(size, np.float64)
        return column


def encode_targets(columns: dict[str, Any], parts: Parts, name: str, task: str, *, standardize: bool,
                   source: str) -> tuple[TargetCode, dict[str, torch.Tensor]]:
    """The target's encoding (classes from every table, scale from the train rows) and each split's targets."""
    code = fit_target(list(columns.values()), columns["train"], name, task, standardize=standardize, source=source,
                      train_rows=parts["train"][1])
    encoded = {table: encode_target(column, code) for table, column in columns.items()}
    return code, {split: torch.from_numpy(encoded[table].take(rows)) for split, (table, rows) in parts.items()}
