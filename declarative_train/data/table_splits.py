"""A table's feature columns encoded compactly, in file order, and its splits as datasets over them.

Each feature column is fitted on the train split's rows and encoded once per table (one file),
whatever the splits: numbers standardised as float32 (one row per numeric column:
*feature-major*), text columns as the index of their category (small integers). A split is the
indices of its rows in the table, in the split's order; :class:`TableSplit` assembles a batch's
float32 input matrix (one-hot text included, :mod:`.table_matrix`) from them when the batch is
fetched. So a table is held as about half its float64 size, not as its one-hot matrix, and no
copy of any split's rows is made when it is loaded.

Each column is taken from its table when it is encoded and dropped after, so its Arrow buffers
are freed while the next ones are encoded; a Parquet file read a column at a time
(:class:`~.table_read.ParquetColumns`) is read as the columns are taken, on the encoding threads.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import attrs
import numpy as np
import torch

from declarative_train.data.module import BatchDataset
from declarative_train.data.table_arrays import SLICE, float_values, pool_array
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
from declarative_train.data.table_matrix import CHUNK, assemble, code_type, standardize_into
from declarative_train.data.table_read import (
    missing_count,
    pyarrow_module,
    unfilled,
    worker_threads,
)
from declarative_train.data.table_threads import in_order
from declarative_train.errors import ArgumentError


@attrs.frozen(eq=False)
class EncodedColumns:
    """One table's encoded feature columns, in file order, and where each goes in the input matrix."""

    #: ``(numeric columns, rows)`` float32, standardised
    numbers: np.ndarray
    #: ``(text columns, rows)`` category indices (-1: none)
    codes: np.ndarray
    #: inputs per row
    width: int
    #: the input column of each numeric column
    number_columns: list[int]
    #: the first input column of each text column
    code_offsets: list[int]

    def inputs(self, rows: np.ndarray, threads: int = 1) -> np.ndarray:
        """The float32 input matrix of ``rows`` (indices into the table), in their order."""
        return assemble(len(rows), self.width, self.numbers.take(rows, axis=1), self.number_columns,
                        self.codes.take(rows, axis=1), self.code_offsets, threads=threads)


class TableSplit(BatchDataset):
    """A split of a table: rows of its :class:`EncodedColumns` and targets, in the split's order.

    A batch's ``(inputs, targets)`` are made when it is fetched (:meth:`fetch`): float32 inputs,
    one-hot text included, and int64 class indices or float32 regression targets. :attr:`tensors`
    makes the whole split at once, as a ``TensorDataset`` holds it.
    """

    def __init__(self, columns: EncodedColumns, targets: np.ndarray, rows: np.ndarray) -> None:
        self.columns, self.targets, self.rows = columns, targets, rows

    def __len__(self) -> int:
        return len(self.rows)

    def fetch(self, indices: Sequence[int]) -> list[torch.Tensor]:
        rows = self.rows.take(np.asarray(indices, dtype=np.int64))
        return [torch.from_numpy(self.columns.inputs(rows)), torch.from_numpy(self.targets.take(rows))]

    def head(self, count: int) -> TableSplit:
        """The split's first ``count`` rows."""
        return TableSplit(self.columns, self.targets, self.rows[:count])

    @cached_property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, targets)`` of every row, in order (made once, when first asked for)."""
        return (torch.from_numpy(self.columns.inputs(self.rows, threads=worker_threads())),
                torch.from_numpy(self.targets.take(self.rows)))


def encode_features(tables: Mapping[str, Any], sizes: Mapping[str, int], train_rows: np.ndarray,
                    names: Sequence[str], kinds: Mapping[str, Any], *, fill_missing: str | None, standardize: bool,
                    max_categories: int) -> tuple[list[ColumnCode], dict[str, EncodedColumns]]:
    """The fitted encodings of the feature columns ``names`` and each table's encoded columns.

    ``tables`` maps a table name (of ``sizes[name]`` rows) to its columns: anything whose
    ``pop(column name)`` gives the column once, a dict of Arrow columns (each then dropped once
    encoded) or a :class:`~.table_read.ParquetColumns` (which reads it then). ``kinds`` are the
    columns' Arrow types. The encodings are fitted on the rows ``train_rows`` of the ``train``
    table (the train split's, :func:`file_order`). Columns are taken and encoded on a few threads
    (numpy and pyarrow release the GIL in their loops): one thread's column is read while
    another's is encoded.

    Missing values are counted as each column is taken. With ``fill_missing`` unset, the first
    table that misses values is an :class:`ArgumentError` listing its columns, raised before any
    error of fitting a column.
    """
    text = [name for name in names if is_text(kinds[name])]
    numeric = [name for name in names if name not in text]
    row_of = {name: index for group in (text, numeric) for index, name in enumerate(group)}  # in codes or numbers
    numbers = {table: pool_array((len(numeric), sizes[table]), np.float32) for table in tables}
    codes = {table: pool_array((len(text), sizes[table]), code_type(max_categories)) for table in tables}
    pyarrow = pyarrow_module()
    pool = pyarrow.default_memory_pool()
    # Columns read here: a thread's next column reuses the pages its last one freed. Columns of a
    # table in memory: each hands its pages back when encoded, so that the peak stays low.
    in_memory = all(isinstance(source, dict) for source in tables.values())
    if in_memory:
        pool.release_unused()  # what reading the file freed
    spare: queue.SimpleQueue[_Scratch] = queue.SimpleQueue()
    for _ in range(worker_threads()):
        spare.put(_Scratch(len(train_rows)))

    def encode(name: str) -> tuple[ColumnCode | ArgumentError, dict[str, int]]:
        columns = {table: source.pop(name) for table, source in tables.items()}
        gaps = {table: missing_count(column) for table, column in columns.items()}
        scratch = spare.get()
        try:
            if name in text:
                code = _encode_text(name, columns, train_rows, codes, row_of[name], max_categories)
            else:
                code = _encode_numbers(name, columns, train_rows, numbers, row_of[name],
                                       fill_missing=fill_missing, standardize=standardize,
                                       complete=not any(gaps.values()), scratch=scratch)
        except ArgumentError as error:
            return error, gaps
        finally:
            spare.put(scratch)
        del columns
        if in_memory:
            # The column's buffers, where no other column shares their pages. mimalloc (pyarrow's pool)
            # hands pages back only in a thread that has allocated from it: hence the tiny buffer.
            pyarrow.allocate_buffer(64, memory_pool=pool)
            pool.release_unused()
        return code, gaps

    # text first: its temporaries come before the numeric columns' pages of ``numbers`` are touched
    by_name = dict(zip(text + numeric, in_order(text + numeric, encode, worker_threads(), pool)))
    pool.release_unused()
    if fill_missing is None:
        for table in tables:
            gaps = {name: by_name[name][1][table] for name in names if by_name[name][1][table]}
            if gaps:
                raise unfilled(gaps, sizes[table])
    fitted = []
    for name in names:
        code, _ = by_name[name]
        if isinstance(code, ArgumentError):
            raise code
        fitted.append(code)
    width, number_columns, code_offsets = layout(fitted)
    return fitted, {table: EncodedColumns(numbers[table], codes[table], width, number_columns, code_offsets)
                    for table in tables}


def _encode_text(name: str, columns: dict[str, Any], train_rows: np.ndarray, codes: dict[str, np.ndarray],
                 index: int, max_categories: int) -> ColumnCode:
    """Fit the text column ``name`` on the ``train_rows`` and write its category indices as row
    ``index`` of each table's ``codes``."""
    code, _ = fit_text(name, columns["train"], train_rows, max_categories, out=codes["train"][index])
    for table, column in columns.items():
        if table != "train":
            codes[table][index] = category_codes(column, code)
    return code


def _encode_numbers(name: str, columns: dict[str, Any], train_rows: np.ndarray, numbers: dict[str, np.ndarray],
                    index: int, *, fill_missing: str | None, standardize: bool, complete: bool,
                    scratch: _Scratch) -> ColumnCode:
    """Fit the numeric column ``name`` on the ``train_rows`` and write it, standardised, as row
    ``index`` of each table's ``numbers``. A ``complete`` column (no value missing in any table)
    takes the statistics without NaN checks and temporaries, in ``scratch``."""
    # The train table's column in this thread's scratch when it comes in chunks (a CSV file's parts).
    values = {table: float_values(column, scratch.values(len(column)) if table == "train" else None)
              for table, column in columns.items()}
    if not (complete and standardize):
        train = values["train"].take(train_rows)
        code = fit_numeric(name, train, fill_missing=fill_missing, standardize=standardize)
    else:
        # mode="clip" (the rows are in range): with "raise", numpy gathers into a copy of ``out``
        train = np.take(values["train"], train_rows, out=scratch.train, mode="clip")
        code = fit_complete_numeric(name, train, fill_missing=fill_missing, standardize=True)
    for table, column in values.items():
        standardize_into(column, code.mean, code.std, code.fill, numbers[table][index], complete=complete,
                         scratch=scratch.slices)
    return code


class _Scratch:
    """Float64 arrays for the columns one thread encodes, kept from column to column (fresh memory
    is slow to touch): the train rows of a column, and slices to standardise in. Made by the
    calling thread from Arrow's pool, before the encoding threads start (mimalloc hands a thread's
    pages back only in that thread)."""

    def __init__(self, train_rows: int) -> None:
        self.train = pool_array(train_rows, np.float64)
        self.slices = pool_array(CHUNK, np.float64)
        self.column: np.ndarray | None = None

    def values(self, size: int) -> np.ndarray:
        """An array of at least ``size`` values: a column in file order."""
        if self.column is None or len(self.column) < size:
            self.column = np.empty(size, np.float64)
        return self.column


def encode_targets(columns: dict[str, Any], train_rows: np.ndarray, name: str, task: str, *, standardize: bool,
                   source: str) -> tuple[TargetCode, dict[str, np.ndarray]]:
    """The target's encoding (classes from every table, scale from the ``train`` table's
    ``train_rows``) and each table's targets, in file order."""
    code = fit_target(list(columns.values()), columns["train"], name, task, standardize=standardize, source=source,
                      train_rows=train_rows)
    return code, {table: encode_target(column, code) for table, column in columns.items()}


def file_order(rows: np.ndarray, size: int) -> np.ndarray:
    """``rows`` (distinct indices below ``size``) sorted, in two linear passes rather than a sort.

    The statistics are taken over the train split's rows in this order: gathered in the split's
    (random) order, a column took several times longer to read, and the statistics differ only in
    their last bits (the order of their sums)."""
    chosen = pool_array(size, bool)
    chosen[:] = False
    chosen[rows] = True
    ordered = pool_array(len(rows), np.int64)
    filled = 0
    for first in range(0, size, SLICE):  # slices: numpy's result of a whole column would be fresh memory
        found = np.flatnonzero(chosen[first:first + SLICE])
        np.add(found, first, out=ordered[filled:filled + len(found)])
        filled += len(found)
    return ordered
