"""The float32 input matrix of a table split, assembled from columns that are already encoded.

:mod:`.table_encode` turns each column into compact per-row values in the split's row order:
standardised numbers as float32 (one row per numeric column: *feature-major*), and for each text
column the index of its category (-1: none). :func:`assemble` writes them into one row-major
float32 matrix in blocks of rows that stay in the CPU's caches: writing whole columns of a large
row-major matrix touches every cache line once per column and took several times longer. Only
numpy is used here; the matrix is created once and never copied (``torch.from_numpy`` shares it).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Rows assembled at a time: a block of a few hundred features stays within the CPU's caches.
BLOCK_ROWS = 4096
#: Values standardised at a time (float64 scratch that stays in the cache).
CHUNK = 1 << 16


def code_type(categories: int) -> np.dtype:
    """The smallest signed integer type holding category indices below ``categories``, and -1."""
    return np.min_scalar_type(-max(categories, 1))


def standardize_into(values: np.ndarray, mean: float, std: float, fill: float, out: np.ndarray, *,
                     complete: bool = False, scratch: np.ndarray | None = None) -> None:
    """``out[:] = (values - mean) / std`` computed in float64 and rounded to ``out``'s type, with NaN
    replaced by ``fill`` first (unless the values are known to be ``complete``). ``values`` is not
    changed (it may be a read-only Arrow buffer). ``scratch``: :data:`CHUNK` float64 values to use."""
    if scratch is None:
        scratch = np.empty(min(len(values), CHUNK), dtype=np.float64)
    for first in range(0, len(values), CHUNK):
        part = values[first:first + CHUNK]
        work = scratch[:len(part)]
        missing = None if complete else np.isnan(part)
        if missing is not None and missing.any():
            part = np.where(missing, fill, part)
        np.subtract(part, mean, out=work)
        np.divide(work, std, out=work)
        out[first:first + len(part)] = work


def assemble(rows: int, width: int, numbers: np.ndarray, number_columns: Sequence[int], codes: np.ndarray,
             code_offsets: Sequence[int], threads: int = 1) -> np.ndarray:
    """A zeroed float32 ``(rows, width)`` matrix with ``numbers[j]`` in column ``number_columns[j]``
    and, for text column ``i``, 1.0 in column ``code_offsets[i] + codes[i, row]`` (none where the
    code is negative: an unseen or missing category is all zeros).

    ``numbers`` is ``(numeric columns, rows)`` float32, ``codes`` ``(text columns, rows)`` integers.
    ``threads`` fill parts of the rows at once (numpy releases the GIL in its copies; the kernel
    zeroes the fresh pages in the thread that first writes them).
    """
    out = np.zeros((rows, width), dtype=np.float32)  # calloc: fresh pages are zero already
    gaps = bool(codes.size) and bool((codes < 0).any())
    step = -(-rows // max(threads, 1) // BLOCK_ROWS) * BLOCK_ROWS or BLOCK_ROWS
    spans = [(first, min(first + step, rows)) for first in range(0, rows, step)]
    runs, offsets = _runs(number_columns), np.asarray(code_offsets, dtype=np.int64)

    def fill(span: tuple[int, int]) -> None:
        _fill(out, span, numbers, runs, codes, offsets, gaps)

    if len(spans) > 1:
        with ThreadPoolExecutor(len(spans)) as workers:
            list(workers.map(fill, spans))
    else:
        for span in spans:
            fill(span)
    return out


def _fill(out: np.ndarray, span: tuple[int, int], numbers: np.ndarray, runs: list[tuple[int, int, int]],
          codes: np.ndarray, code_offsets: np.ndarray, gaps: bool) -> None:
    """Rows ``span`` of :func:`assemble`'s matrix, in blocks of :data:`BLOCK_ROWS` rows; every text
    column's ones are set by one assignment per block (``gaps``: some codes are -1, none set)."""
    width = out.shape[1]
    flat = out.reshape(-1)
    row_starts = np.arange(min(BLOCK_ROWS, span[1] - span[0]), dtype=np.int64)[:, None] * width + code_offsets
    for first in range(*span, BLOCK_ROWS):
        last = min(first + BLOCK_ROWS, span[1])
        block = out[first:last]
        for source, column, count in runs:
            block[:, column:column + count] = numbers[source:source + count, first:last].T
        if len(code_offsets):
            part = codes[:, first:last].T
            positions = row_starts[:last - first] + part + first * width
            flat[positions[part >= 0] if gaps else positions] = 1.0


def _runs(columns: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(first row of numbers, first output column, count)`` for each run of consecutive columns."""
    runs: list[tuple[int, int, int]] = []
    for source, column in enumerate(columns):
        if runs and runs[-1][1] + runs[-1][2] == column:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((source, column, 1))
    return runs
