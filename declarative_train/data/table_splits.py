"""A table's splits as tensors: each feature column fitted on the train rows and encoded for every
split, one column at a time, then each split's matrix assembled once (:mod:`.table_matrix`).

A split is a table (one file) and the indices of its rows in the split's order. Each column is
removed from the tables' column dicts as soon as it is encoded, so its Arrow buffers are freed
while the next ones are encoded; what is left per split is about its share of the encoded matrix
(float32 numbers, small integer category codes) until the matrix is assembled. No row-major copy
of a whole table, of the train rows or of a split is made on the way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from declarative_train.data.table_encode import (
    ColumnCode,
    TargetCode,
    category_codes,
    encode_target,
    fit_numeric,
    fit_target,
    fit_text,
    float_values,
    is_text,
    layout,
)
from declarative_train.data.table_matrix import assemble, code_type, standardize_into
from declarative_train.data.table_read import pyarrow_module

#: Columns encoded at once (each holds its own float64 copies while it is encoded).
_THREADS = 2
#: ``{split: (table name, row indices in the split's order)}``; the train split's table is ``"train"``.
Parts = Mapping[str, tuple[str, np.ndarray]]
#: ``{split: (standardised numeric columns (columns, rows) float32, text category indices (columns, rows))}``
Encoded = dict[str, tuple[np.ndarray, np.ndarray]]


def encode_features(tables: dict[str, dict[str, Any]], parts: Parts, names: Sequence[str], *,
                    fill_missing: str | None, standardize: bool, max_categories: int) -> tuple[list[ColumnCode], Encoded]:
    """The fitted encodings of the feature columns ``names`` and each split's encoded columns (for
    :func:`assemble_inputs`).

    ``tables`` maps a table name to its columns by name; the feature columns are removed from it.
    Columns are encoded on a few threads (numpy and pyarrow release the GIL in their loops).
    """
    text = [name for name in names if is_text(tables["train"][name].type)]
    numeric = [name for name in names if name not in text]
    numbers = {split: np.empty((len(numeric), len(rows)), np.float32) for split, (_, rows) in parts.items()}
    codes = {split: np.empty((len(text), len(rows)), code_type(max_categories)) for split, (_, rows) in parts.items()}
    pool = pyarrow_module().default_memory_pool()
    pool.release_unused()  # what reading the file freed

    def encode(name: str) -> ColumnCode:
        columns = {table: columns.pop(name) for table, columns in tables.items()}
        if name in text:
            code = _encode_text(name, columns, parts, codes, text.index(name), max_categories)
        else:
            code = _encode_numbers(name, columns, parts, numbers, numeric.index(name), fill_missing=fill_missing,
                                   standardize=standardize)
        del columns
        pool.release_unused()  # the column's buffers, where no other column shares their pages
        return code

    with ThreadPoolExecutor(min(_THREADS, pyarrow_module().cpu_count())) as workers:
        fitted = list(workers.map(encode, names))
    pool.release_unused()
    return fitted, {split: (numbers[split], codes[split]) for split in parts}


def assemble_inputs(fitted: Sequence[ColumnCode], encoded: Encoded) -> dict[str, torch.Tensor]:
    """Each split's float32 input matrix from its encoded columns, which are dropped from ``encoded`` as it goes."""
    width, number_columns, code_offsets = layout(fitted)
    inputs = {}
    for split in list(encoded):  # the train split (the largest) first, then its columns go
        numbers, codes = encoded.pop(split)
        inputs[split] = torch.from_numpy(assemble(codes.shape[1], width, numbers, number_columns, codes, code_offsets))
    return inputs


def _encode_text(name: str, columns: dict[str, Any], parts: Parts, codes: dict[str, np.ndarray], index: int,
                 max_categories: int) -> ColumnCode:
    """Fit the text column ``name`` on the train rows and write its category indices as row ``index``
    of each split's ``codes``."""
    code, train_codes = fit_text(name, columns["train"], parts["train"][1], max_categories)
    by_table = {table: train_codes if table == "train" else category_codes(column, code)
                for table, column in columns.items()}
    for split, (table, rows) in parts.items():
        codes[split][index] = by_table[table].take(rows)
    return code


def _encode_numbers(name: str, columns: dict[str, Any], parts: Parts, numbers: dict[str, np.ndarray], index: int, *,
                    fill_missing: str | None, standardize: bool) -> ColumnCode:
    """Fit the numeric column ``name`` on the train rows and write it, standardised, as row ``index``
    of each split's ``numbers``."""
    values = {table: float_values(column) for table, column in columns.items()}
    train = values["train"].take(parts["train"][1])  # in the train split's order, as the statistics need
    code = fit_numeric(name, train, fill_missing=fill_missing, standardize=standardize)
    for split, (table, rows) in parts.items():
        taken = train if split == "train" else values[table].take(rows)
        standardize_into(taken, code.mean, code.std, code.fill, numbers[split][index])
    return code


def encode_targets(columns: dict[str, Any], parts: Parts, name: str, task: str, *, standardize: bool,
                   source: str) -> tuple[TargetCode, dict[str, torch.Tensor]]:
    """The target's encoding (classes from every table, scale from the train rows) and each split's targets."""
    code = fit_target(list(columns.values()), columns["train"].take(parts["train"][1]), name, task,
                      standardize=standardize, source=source)
    encoded = {table: encode_target(column, code) for table, column in columns.items()}
    return code, {split: torch.from_numpy(encoded[table].take(rows)) for split, (table, rows) in parts.items()}
