"""Arrow columns as numpy arrays, without copies where the buffers allow: numbers as float64,
text as distinct values and each row's index among them, small integer sets counted.

pyarrow is imported inside the functions: importing this module does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Values handled at a time where numpy would otherwise copy a whole column into fresh memory
#: (``bincount`` copies a read-only or 32-bit input to 64-bit integers, ``take`` its indices).
SLICE = 1 << 16


def float_values(column: Any, scratch: np.ndarray | None = None) -> np.ndarray:
    """A numeric column as float64 with NaN where values are missing. A float64 column of several
    chunks is copied into the first rows of ``scratch`` when given (memory already touched: a fresh
    array's pages cost a fault each); other columns are cast, or combined, into a new array."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    if scratch is None or getattr(column, "num_chunks", 1) <= 1 or not pat.is_float64(column.type):
        return np.asarray(numpy_values(pc.cast(column, "float64")), dtype=np.float64)
    out = scratch[:len(column)]
    first = 0
    for chunk in column.chunks:
        out[first:first + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        first += len(chunk)
    return out


def pool_array(shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised numpy array in Arrow's memory pool.

    The pool (mimalloc) maps its memory in huge pages, so an array of a few megabytes is first
    written with a handful of page faults rather than one per 4 KB page (numpy asks for huge pages
    only from 4 MiB, and its arrays seldom start on a 2 MB boundary). On a virtual machine whose
    host has taken a page back, each such fault costs tens of microseconds.
    """
    import pyarrow as pa

    kind = np.dtype(dtype)
    count = int(np.prod(shape))
    if not count:
        return np.empty(shape, kind)
    return np.frombuffer(pa.allocate_buffer(count * kind.itemsize), kind, count).reshape(shape)


def numpy_values(values: Any) -> np.ndarray:
    """An Arrow array or chunked array as one numpy array (nulls as NaN in floats), a view when it can
    be. A chunked array is combined first: its own ``to_numpy`` goes through pandas' conversion and
    took several times longer on a CSV column of a few hundred chunks."""
    return np.asarray(one_array(values).to_numpy(zero_copy_only=False))


def one_array(values: Any) -> Any:
    """An Arrow chunked array as one array (``combine_chunks`` copies even a single chunk)."""
    if not hasattr(values, "combine_chunks"):
        return values
    return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()


def distinct_values(column: Any) -> tuple[list[str | None], np.ndarray]:
    """A text (or dictionary) column's distinct values as strings (``None``: missing) and each row's
    index among them. A dictionary column (Parquet text is read as one) is not hashed again."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)  # one pass of hashing; every chunk shares the dictionary
    combined = one_array(column)  # several chunks: their dictionaries are unified
    values = pc.cast(combined.dictionary, pa.string()).to_pylist() + [None]  # the last one: missing
    indices = combined.indices
    if indices.null_count:
        indices = pc.fill_null(indices, len(values) - 1)
    index = np.asarray(indices.to_numpy(zero_copy_only=False))
    return values, index.astype(np.int64) if index.dtype.kind == "u" else index


def small_integers(columns: Sequence[Any], limit: int = 1 << 20) -> list[int] | None:
    """The sorted distinct values of integer ``columns`` without missing values, marked in an array
    rather than hashed, when they lie in ``[0, limit)``; ``None`` for other columns (``limit=0``: only check the type)."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    if not all(pat.is_integer(c.type) and not pat.is_uint64(c.type) and not c.null_count
               for c in columns):
        return None
    if not limit:
        return []
    ranges = [pc.min_max(c).as_py() for c in columns if len(c)]
    if not ranges or min(r["min"] for r in ranges) < 0 or max(r["max"] for r in ranges) >= limit:
        return None
    seen = np.zeros(max(r["max"] for r in ranges) + 1, dtype=bool)
    for column in columns:
        mark_present(numpy_values(column), None, seen)
    return np.flatnonzero(seen).tolist()


def mark_present(values: np.ndarray, rows: np.ndarray | None, seen: np.ndarray) -> np.ndarray:
    """Set ``seen[v]`` (a bool array) for each value ``v`` among ``values`` at ``rows`` (every row
    when ``None``), :data:`SLICE` values at a time, and return ``seen``. Stops once every
    entry is set: the rows left cannot change it (a column's categories are seen within its first
    rows, as a rule)."""
    count = len(values) if rows is None else len(rows)
    for first in range(0, count, SLICE):
        if seen.all():
            break
        part = values[first:first + SLICE] if rows is None else values.take(rows[first:first + SLICE])
        seen |= np.bincount(part, minlength=len(seen)).astype(bool)
    return seen
