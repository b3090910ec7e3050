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

from declarative_train.data.table_arrays import (
    SLICE,
    distinct_values,
    float_values,
    mark_present,
    numpy_values,
    small_integers,
)
from declarative_train.data.table_matrix import assemble, code_type, standardize_into
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
    return [fit_text(name, table.column(name), None, max_categories)[0] if is_text(table.column(name).type)
            else fit_numeric(name, float_values(table.column(name)), fill_missing=fill_missing, standardize=standardize)
            for name in columns]


def fit_numeric(name: str, train: np.ndarray, *, fill_missing: str | None, standardize: bool) -> ColumnCode:
    """A numeric column's encoding from its ``train`` values (float64, NaN where missing). Their
    order is the sums' order, and so decides the last bits of the statistics."""
    missing = np.isnan(train)
    gaps = bool(missing.any())
    present = train[~missing] if gaps else train
    mean = float(present.mean()) if len(present) else 0.0
    fill = mean if fill_missing == "mean" else 0.0
    filled = np.where(missing, fill, train) if gaps else train
    std = float(filled.std(ddof=1)) if len(filled) > 1 else 0.0
    if not standardize:
        return ColumnCode(name, fill=fill)
    # constant columns keep a unit scale, as sklearn's StandardScaler does
    return ColumnCode(name, fill=fill, mean=float(filled.mean()) if gaps else mean, std=std if std > 1e-6 else 1.0)


def fit_complete_numeric(name: str, train: np.ndarray, *, fill_missing: str | None, standardize: bool) -> ColumnCode:
    """:func:`fit_numeric` for ``train`` values without NaN, computed as numpy's ``mean`` and ``std``
    compute them (so bit for bit the same) without their temporaries: ``train`` (float64) is left
    holding the squared deviations from the mean."""
    count = len(train)
    mean = float(np.add.reduce(train) / count) if count else 0.0
    np.subtract(train, mean, out=train)
    std = float(np.sqrt(np.add.reduce(np.square(train, out=train)) / (count - 1))) if count > 1 else 0.0
    fill = mean if fill_missing == "mean" else 0.0
    if not standardize:
        return ColumnCode(name, fill=fill)
    return ColumnCode(name, fill=fill, mean=mean, std=std if std > 1e-6 else 1.0)


def fit_text(name: str, column: Any, train_rows: np.ndarray | None, max_categories: int,
             out: np.ndarray | None = None) -> tuple[ColumnCode, np.ndarray]:
    """A text column's encoding (the sorted categories of its ``train_rows``, or of every row when
    ``None``) and the column's category index per row (-1: missing, or not a train category),
    written into ``out`` when given (of :func:`code_type` for ``max_categories``)."""
    values, index = distinct_values(column)
    seen = np.zeros(len(values), dtype=bool)
    seen[-1] = True  # the last value, missing, is no category: not looked for
    mark_present(index, train_rows, seen)
    categories = sorted({v for v, s in zip(values, seen) if s and v is not None})
    if len(categories) > max_categories:
        raise ArgumentError(OWNER, "max_categories", f"is {max_categories}, text column {name!r} has "
                                                     f"{len(categories)} categories in the train split: leave "
                                                     f"it out (data.drop=[{name}]) or raise data.max_categories")
    position = {value: i for i, value in enumerate(categories)}
    lookup = np.array([position.get(v, -1) if v is not None else -1 for v in values], dtype=code_type(max_categories))
    if out is None:
        return ColumnCode(name, categories=tuple(categories)), lookup.take(index)
    for first in range(0, len(index), SLICE):  # numpy copies 32-bit indices to 64 bits first
        lookup.take(index[first:first + SLICE], out=out[first:first + SLICE], mode="clip")  # in range
    return ColumnCode(name, categories=tuple(categories)), out


def category_codes(column: Any, code: ColumnCode) -> np.ndarray:
    """The index of each row's value among ``code.categories`` (-1: missing, or not a category)."""
    import pyarrow.compute as pc

    assert code.categories is not None
    index = pc.index_in(pc.cast(column, "string"), value_set=_string_array(code.categories))
    return numpy_values(pc.fill_null(index, -1)).astype(code_type(len(code.categories)))


def encode_columns(table: Any, codes: Sequence[ColumnCode]) -> np.ndarray:
    """``table``'s feature columns as one float32 matrix (rows, sum of the codes' widths)."""
    numeric = [code for code in codes if code.categories is None]
    numbers = np.empty((len(numeric), table.num_rows), dtype=np.float32)
    for row, code in zip(numbers, numeric):
        standardize_into(float_values(table.column(code.name)), code.mean, code.std, code.fill, row)
    text = [code for code in codes if code.categories is not None]
    indices = [category_codes(table.column(code.name), code) for code in text]
    width, number_columns, code_offsets = layout(codes)
    return assemble(table.num_rows, width, numbers, number_columns,
                    np.stack(indices) if indices else np.empty((0, table.num_rows), np.int8), code_offsets)


def layout(codes: Sequence[ColumnCode]) -> tuple[int, list[int], list[int]]:
    """``(width, output column of each numeric code, first output column of each text code)``."""
    offsets = np.cumsum([0] + [code.width for code in codes]).tolist()
    return (offsets[-1], [o for o, c in zip(offsets, codes) if c.categories is None],
            [o for o, c in zip(offsets, codes) if c.categories is not None])


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


def choose_task(column: Any, task: str, counted: list[int] | None = None) -> tuple[str, str]:
    """``(task, why)`` for the target ``column`` and the configured ``task`` (``auto`` decides);
    ``counted``: the column's :func:`small_integers`, when known."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    kind = column.type
    shown = kind.value_type if pat.is_dictionary(kind) else kind  # Parquet text is read as dictionaries
    if task != "auto":
        if task == "regression" and not _numeric(kind):
            raise ArgumentError(OWNER, "task", f"is regression, but the target holds {shown} values, not numbers")
        return task, f"data.task={task}"
    if is_text(kind) or pat.is_boolean(kind):
        return "classification", f"the target holds {shown} values"
    if pat.is_integer(kind):
        counted = small_integers([column]) if counted is None else counted
        distinct = len(counted) if counted is not None else len(pc.unique(column).drop_null())
        if distinct <= MAX_AUTO_CLASSES:
            return "classification", f"the target holds integers with {distinct} distinct values (<= {MAX_AUTO_CLASSES})"
        return "regression", f"the target holds integers with {distinct} distinct values (> {MAX_AUTO_CLASSES})"
    if _numeric(kind):
        return "regression", f"the target holds {kind} values"
    raise ArgumentError(OWNER, "target", f"holds {kind} values, which are neither numbers nor text")


def fit_target(columns: Sequence[Any], train: Any, name: str, task: str, *, standardize: bool,
               source: str, train_rows: np.ndarray | None = None) -> TargetCode:
    """The target's encoding: classes from every split's ``columns``, scale from the ``train`` column
    (its ``train_rows``, in the order given, when given)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = small_integers(columns) if task != "regression" else None  # counted once for both steps
    chosen, reason = choose_task(columns[0], task, values if len(columns) == 1 else None)
    if chosen == "classification":
        if values is None:
            merged = pa.chunked_array([chunk for c in columns for chunk in _as_classes(c).chunks],
                                      type=_as_classes(columns[0]).type)
            values = sorted(pc.unique(merged).drop_null().to_pylist())
        if len(values) < 2:
            raise ArgumentError(OWNER, "target", f"column {name!r} of {source} holds a single class "
                                                 f"({values[0] if values else 'none'!r}): nothing to classify")
        return TargetCode(name, chosen, reason, class_values=tuple(values))
    scale = float_values(train if train_rows is None else train.take(train_rows))
    mean, std = float(scale.mean()), float(scale.std(ddof=1)) if len(scale) > 1 else 1.0
    if not standardize:
        mean, std = 0.0, 1.0
    return TargetCode(name, chosen, reason, mean=mean, std=std if std > 1e-12 else 1.0)


def encode_target(column: Any, code: TargetCode) -> np.ndarray:
    """Class indices (int64) or scaled values (float32) of a target ``column``; a read-only view of
    the column's memory where it holds the class indices already."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if code.class_values is None:
        return ((float_values(column) - code.mean) / code.std).astype(np.float32)
    if all(type(v) is int for v in code.class_values) and small_integers([column], limit=0) is not None:
        values, known = numpy_values(column), np.array(code.class_values, dtype=np.int64)
        if len(values) and code.class_values == tuple(range(len(known))):
            extremes = pc.min_max(column)  # classes 0..k-1: a value among them is its own index
            if extremes["min"].as_py() >= 0 and extremes["max"].as_py() < len(known):
                return values.astype(np.int64, copy=False)  # the column's own memory when it is int64
        # integer classes of integers without missing values: found by bisection rather than hashing
        found = np.searchsorted(known, values)
        hit = known.take(found, mode="clip") == values
        return found if hit.all() else np.where(hit, found, -1)
    classes = _as_classes(column)
    index = pc.index_in(classes, value_set=pa.array(list(code.class_values), type=classes.type))
    return numpy_values(pc.fill_null(index, -1)).astype(np.int64)


def _as_classes(column: Any) -> Any:
    """Text classes as strings (dictionary columns decoded); numbers and booleans as they are."""
    import pyarrow.compute as pc

    return pc.cast(column, "string") if is_text(column.type) else column


def _numeric(kind: Any) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind) or pat.is_boolean(kind)
                or pat.is_null(kind))


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
