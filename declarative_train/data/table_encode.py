"""Encoding table columns as numbers: fitted on the train split, applied to every split.

Numeric (and boolean) columns are standardised with the train split's mean and standard
deviation; text columns are one-hot encoded over the categories of the train split, sorted. A
category the train split never saw (and a missing text value under ``fill_missing=mean|zero``)
is encoded as all zeros: no column of that feature is set. The target is class indices (class
names sorted) for classification and a float (standardised with the train split's statistics
unless asked not to) for regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from declarative_train.data.table_read import OWNER
from declarative_train.errors import ArgumentError
from declarative_train.utils.text import not_one_of

TASKS = ("auto", "classification", "regression")
FILL_MODES = ("mean", "zero", "drop")
#: ``task=auto``: an integer target with at most this many distinct values is classification.
MAX_AUTO_CLASSES = 20


def is_text(kind: Any) -> bool:
    """Whether an arrow type is read as categories (text, or dictionary-encoded values)."""
    import pyarrow.types as pat

    return bool(pat.is_string(kind) or pat.is_large_string(kind) or pat.is_dictionary(kind))


@attrs.frozen
class ColumnCode:
    """One feature column's fitted encoding: ``mean``/``std`` (numeric) or ``categories`` (text)."""

    name: str
    fill: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] | None = None

    @property
    def width(self) -> int:
        """Input features this column becomes."""
        return 1 if self.categories is None else len(self.categories)


def fit_columns(table: Any, columns: Sequence[str], *, fill_missing: str | None, standardize: bool,
                max_categories: int) -> list[ColumnCode]:
    """Encodings of ``columns`` fitted on ``table`` (the train split's rows)."""
    import pyarrow.compute as pc

    codes = []
    for name in columns:
        column = table.column(name)
        if is_text(column.type):
            values = pc.unique(pc.cast(column, "string")).drop_null().to_pylist()
            if len(values) > max_categories:
                raise ArgumentError(OWNER, "max_categories", f"is {max_categories}, text column {name!r} has "
                                                             f"{len(values)} categories in the train split: leave "
                                                             f"it out (data.drop=[{name}]) or raise data.max_categories")
            codes.append(ColumnCode(name, categories=tuple(sorted(values))))
            continue
        values = _floats(column)
        present = values[~np.isnan(values)]
        mean = float(present.mean()) if len(present) else 0.0
        fill = mean if fill_missing == "mean" else 0.0
        filled = np.where(np.isnan(values), fill, values)
        std = float(filled.std(ddof=1)) if len(filled) > 1 else 0.0
        if standardize:  # constant columns keep a unit scale, as sklearn's StandardScaler does
            codes.append(ColumnCode(name, fill=fill, mean=float(filled.mean()), std=std if std > 1e-6 else 1.0))
        else:
            codes.append(ColumnCode(name, fill=fill))
    return codes


#: Rows encoded at a time (a block of a few hundred features stays within the CPU's caches).
_ENCODE_BLOCK_ROWS = 4096


def encode_columns(table: Any, codes: Sequence[ColumnCode]) -> np.ndarray:
    """``table``'s feature columns as one float32 matrix (rows, sum of the codes' widths)."""
    import pyarrow.compute as pc

    sources = []  # per code: its float64 values, or its category index per row (-1: none)
    for code in codes:
        column = table.column(code.name)
        if code.categories is None:
            sources.append(_floats(column))  # may be a read-only view of the Arrow buffer
        else:
            index = pc.index_in(pc.cast(column, "string"), value_set=_string_array(code.categories))
            sources.append(pc.fill_null(index, -1).to_numpy(zero_copy_only=False))
    out = np.zeros((table.num_rows, sum(code.width for code in codes)), dtype=np.float32)
    # Filled in blocks of rows that fit in the CPU cache: writing whole columns of a large row-major
    # matrix (or transposing a feature-major one) took several times longer.
    for first in range(0, table.num_rows, _ENCODE_BLOCK_ROWS):
        block = out[first:first + _ENCODE_BLOCK_ROWS]
        offset = 0
        for code, source in zip(codes, sources):
            part = source[first:first + _ENCODE_BLOCK_ROWS]
            if code.categories is None:
                missing = np.isnan(part)
                if missing.any():
                    part = np.where(missing, code.fill, part)
                block[:, offset] = (part - code.mean) / code.std
            else:
                rows = np.nonzero(part >= 0)[0]
                block[rows, offset + part[rows]] = 1.0  # unseen or missing: all zeros
            offset += code.width
    return out

def check_encodable(table: Any, codes: Sequence[ColumnCode], argument: str, source: str) -> None:
    """Refuse text where the train split had numbers: such a column cannot take its fitted encoding.

    (Numbers where the train split had text are read as text: categories the train split lacks.)
    """
    wrong = [code.name for code in codes if code.categories is None and is_text(table.column(code.name).type)]
    if wrong:
        raise ArgumentError(OWNER, argument, f"{source} holds text in the columns {wrong}, which hold numbers "
                                             f"in the train split")


@attrs.frozen
class TargetCode:
    """How the target column becomes tensors: the task, class names, or scale."""

    name: str
    task: str
    reason: str
    class_values: tuple[Any, ...] | None = None
    mean: float = 0.0
    std: float = 1.0

    @property
    def class_names(self) -> list[str] | None:
        """Class names, in class-index order."""
        return None if self.class_values is None else [str(v) for v in self.class_values]


def choose_task(column: Any, task: str) -> tuple[str, str]:
    """``(task, why)`` for the target ``column`` and the configured ``task`` (``auto`` decides)."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    kind = column.type
    if task != "auto":
        if task == "regression" and not _numeric(kind):
            raise ArgumentError(OWNER, "task", f"is regression, but the target holds {kind} values, not numbers")
        return task, f"data.task={task}"
    if is_text(kind) or pat.is_boolean(kind):
        return "classification", f"the target holds {kind} values"
    if pat.is_integer(kind):
        distinct = len(pc.unique(column).drop_null())
        if distinct <= MAX_AUTO_CLASSES:
            return "classification", f"the target holds integers with {distinct} distinct values (<= {MAX_AUTO_CLASSES})"
        return "regression", f"the target holds integers with {distinct} distinct values (> {MAX_AUTO_CLASSES})"
    if _numeric(kind):
        return "regression", f"the target holds {kind} values"
    raise ArgumentError(OWNER, "target", f"holds {kind} values, which are neither numbers nor text")


def fit_target(columns: Sequence[Any], train: Any, name: str, task: str, *, standardize: bool,
               source: str) -> TargetCode:
    """The target's encoding: classes from every split's ``columns``, scale from the ``train`` column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chosen, reason = choose_task(columns[0], task)
    if chosen == "classification":
        merged = pa.chunked_array([chunk for c in columns for chunk in _as_classes(c).chunks],
                                  type=_as_classes(columns[0]).type)
        values = sorted(pc.unique(merged).drop_null().to_pylist())
        if len(values) < 2:
            raise ArgumentError(OWNER, "target", f"column {name!r} of {source} holds a single class "
                                                 f"({values[0] if values else 'none'!r}): nothing to classify")
        return TargetCode(name, chosen, reason, class_values=tuple(values))
    scale = _floats(train)
    mean, std = float(scale.mean()), float(scale.std(ddof=1)) if len(scale) > 1 else 1.0
    if not standardize:
        mean, std = 0.0, 1.0
    return TargetCode(name, chosen, reason, mean=mean, std=std if std > 1e-12 else 1.0)


def encode_target(column: Any, code: TargetCode) -> np.ndarray:
    """Class indices (int64) or scaled values (float32) of a target ``column``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if code.class_values is None:
        return ((_floats(column) - code.mean) / code.std).astype(np.float32)
    classes = _as_classes(column)
    index = pc.index_in(classes, value_set=pa.array(list(code.class_values), type=classes.type))
    return pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _as_classes(column: Any) -> Any:
    """Text classes as strings (dictionary columns decoded); numbers and booleans as they are."""
    import pyarrow.compute as pc

    return pc.cast(column, "string") if is_text(column.type) else column


def _numeric(kind: Any) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind) or pat.is_boolean(kind)
                or pat.is_null(kind))


def _floats(column: Any) -> np.ndarray:
    """A numeric column as float64 with NaN where values are missing."""
    import pyarrow.compute as pc

    values = pc.cast(column, "float64")
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)


def _string_array(values: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), type=pa.string())


def target_shapes(code: TargetCode) -> dict[str, Any]:
    """What the target tells a model config: ``task``, and ``num_classes`` with ``class_names``
    (classification) or ``target_width`` (regression)."""
    if code.task == "classification":
        return {"task": code.task, "num_classes": len(code.class_names or []), "class_names": code.class_names}
    return {"task": code.task, "target_width": 1}


def check_table_options(owner: str, *, task: str, fill_missing: str | None, val_fraction: float,
                        test_fraction: float) -> None:
    """The options tables and Hugging Face datasets share: ``task``, ``fill_missing``, the split fractions."""
    if task not in TASKS:
        raise ArgumentError(owner, "task", not_one_of(task, TASKS))
    if fill_missing is not None and fill_missing not in FILL_MODES:
        raise ArgumentError(owner, "fill_missing", not_one_of(fill_missing, FILL_MODES) + " (or null: an error)")
    for argument, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ArgumentError(owner, argument, f"must be in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ArgumentError(owner, "val_fraction", f"+ test_fraction must be < 1, got {val_fraction} + {test_fraction}")
