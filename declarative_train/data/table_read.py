"""Reading a table file with pyarrow: the format, the columns asked for, missing values.

Formats: CSV, TSV, Parquet and JSON Lines, from the file's extension (a ``.gz``/``.bz2``/``.zst``
suffix on CSV/TSV is decompressed by pyarrow) or named with ``format``. pyarrow is imported only
here, when a table is read; without it the error names the extra that installs it.

Problems with the user's input raise :class:`~declarative_train.errors.ArgumentError` naming the
data module's argument (``path``, ``target``, ``features``, ...), which the builder reports as
``data.<argument>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from declarative_train.data.table_csv import COMPRESSED, read_csv_file
from declarative_train.errors import ArgumentError, ConfigError, ConfigIssue
from declarative_train.utils.text import did_you_mean

OWNER = "TableData"
FORMATS = ("csv", "tsv", "parquet", "jsonl")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
               ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
INSTALL_HINT = "pip install 'declarative_train[tables]'"
#: Threads that read (CSV) and encode a table at once, at most.
MAX_THREADS = 2


def worker_threads() -> int:
    """Threads to read and encode a table with: :data:`MAX_THREADS`, or fewer cores. (Not pyarrow's
    ``cpu_count``, which ``OMP_NUM_THREADS`` sets: it limits OpenMP's threads, and torch's, not these.)"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


def pyarrow_module() -> Any:
    """``pyarrow``, or a :class:`ConfigError` (exit 2) naming the extra that installs it."""
    try:
        import pyarrow
    except ImportError:
        raise ConfigError([ConfigIssue("data", f"data=table reads files with pyarrow, which is not installed: "
                                               f"{INSTALL_HINT}")]) from None
    return pyarrow


def file_format(path: str | Path, format: str | None = None, argument: str = "path") -> str:
    """``csv``, ``tsv``, ``parquet`` or ``jsonl``: ``format`` when given, else from the extension."""
    if format is not None:
        if format not in FORMATS:
            raise ArgumentError(OWNER, "format", f"must be one of {', '.join(FORMATS)}, got {format!r}."
                                                 f"{did_you_mean(str(format), FORMATS)}")
        return format
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    found = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise ArgumentError(OWNER, argument, f"cannot tell the format of {str(path)!r} from its extension "
                                             f"(known: {', '.join(sorted(_EXTENSIONS))}); set data.format")
    return found


def read_table(path: str | Path, format: str | None = None, argument: str = "path", *,
               by_column: bool = False) -> Any:
    """The whole file as a ``pyarrow.Table`` (``argument`` names the setting that gave ``path``); a
    Parquet file's text columns come as dictionary columns. ``by_column``: a Parquet file as
    :class:`ParquetColumns` instead, its columns read when asked for."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ArgumentError(OWNER, argument, f"is not a file: {str(file.resolve())!r}")
    kind = file_format(file, format, argument)
    pa = pyarrow_module()
    try:
        if kind in ("csv", "tsv"):
            return read_csv_file(file, "\t" if kind == "tsv" else ",", worker_threads())
        if kind == "parquet":
            if by_column:
                return ParquetColumns(file, argument)
            # Text columns are read as dictionaries: Parquet stores them so, and their categories
            # then come without decoding every string and hashing it again.
            with _parquet_file(file, _text_columns(_parquet_schema(file))) as parquet:
                return parquet.read()
        import pyarrow.json as pa_json

        return pa_json.read_json(file)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ArgumentError(OWNER, argument, f"cannot read {str(file)!r} as {kind}: {exc}") from None


class ParquetColumns:
    """A Parquet file whose columns are read one at a time, when asked for (:meth:`column`), so that
    threads can read some columns while others are being encoded; each column's memory is then
    freed on its own, too. ``schema`` (text columns as dictionaries, as :func:`read_table` reads
    them), ``column_names`` and ``num_rows`` come from the file's footer: these are the parts of a
    ``pyarrow.Table`` that :class:`~.table.TableData` uses.
    """

    def __init__(self, file: Path, argument: str) -> None:
        self.file, self.argument = file, argument
        schema = _parquet_schema(file)
        self._text = set(_text_columns(schema))
        with _parquet_file(file, self._text) as parquet:
            self.schema, self.num_rows = parquet.schema_arrow, parquet.metadata.num_rows
        self.column_names = list(self.schema.names)

    def column(self, name: str) -> Any:
        """The column ``name`` as a ``pyarrow.ChunkedArray``, read now (on this thread alone)."""
        pa = pyarrow_module()
        try:
            with _parquet_file(self.file, [name] if name in self._text else []) as parquet:
                return parquet.read(columns=[name], use_threads=False).column(0)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ArgumentError(OWNER, self.argument, f"cannot read column {name!r} of {str(self.file)!r} as "
                                                      f"parquet: {exc}") from None

    pop = column  # a mapping of columns that are dropped once used (see :func:`~.table_splits.encode_features`)


def _parquet_schema(file: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_schema(file)


def _parquet_file(file: Path, text: Collection[str]) -> Any:
    """A ``ParquetFile`` that reads the ``text`` columns as dictionaries. Without pre-buffering, the
    compressed column chunks are not all held in memory at once (the reader's peak drops by about
    the file's size); ``ParquetFile`` skips ``pyarrow.dataset``."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(file, pre_buffer=False, read_dictionary=list(text))


def _text_columns(schema: Any) -> list[str]:
    """The top-level text columns of an Arrow schema."""
    import pyarrow.types as pat

    return [field.name for field in schema if pat.is_string(field.type) or pat.is_large_string(field.type)]


def select_columns(table: Any, target: str, features: Sequence[str] | None, drop: Sequence[str],
                   source: str) -> list[str]:
    """The feature columns: ``features`` (default every column but ``target``) minus ``drop``.

    Every name must be a column of ``table``; unknown ones are reported with the closest header
    name. ``source`` names the file in messages.
    """
    columns = list(table.column_names)

    def unknown(names: Sequence[str]) -> str:
        return "; ".join(f"{name!r} is not a column of {source}.{did_you_mean(name, columns)}" for name in names)

    if target not in columns:
        shown = ", ".join(columns[:30]) + (f", ... ({len(columns)} in all)" if len(columns) > 30 else "")
        raise ArgumentError(OWNER, "target", f"{unknown([target])} (columns: {shown})")
    for argument, names in (("features", features or []), ("drop", drop)):
        missing = [name for name in names if name not in columns]
        if missing:
            raise ArgumentError(OWNER, argument, unknown(missing))
    if features is not None and target in features:
        raise ArgumentError(OWNER, "features", f"holds the target column {target!r}")
    chosen = list(features) if features is not None else [c for c in columns if c != target]
    chosen = [c for c in chosen if c not in set(drop)]
    if not chosen:
        raise ArgumentError(OWNER, "features", f"no feature column is left in {source} (target {target!r}, "
                                               f"drop {list(drop)})")
    return chosen


def check_flat(table: Any, columns: Sequence[str]) -> None:
    """Refuse nested (list, struct, map) and other columns that are neither numbers nor text."""
    import pyarrow.types as pat

    bad = []
    for name in columns:
        kind = table.schema.field(name).type
        if pat.is_dictionary(kind):
            kind = kind.value_type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind) or pat.is_decimal(kind)
                or pat.is_string(kind) or pat.is_large_string(kind) or pat.is_null(kind)):
            bad.append(f"{name!r} ({kind})")
    if bad:
        raise ArgumentError(OWNER, "features", f"holds columns that are neither numbers nor text: {', '.join(bad)} "
                                               f"(nested and temporal columns are not read): leave them out "
                                               f"with data.drop=[...] or list data.features")


def missing_counts(table: Any, columns: Sequence[str]) -> dict[str, int]:
    """Missing values (nulls, and NaN in float columns) per column, for those with any."""
    counts = {name: missing_count(table.column(name)) for name in columns}
    return {name: count for name, count in counts.items() if count}


def unfilled(counts: dict[str, int], rows: int) -> ArgumentError:
    """The error for columns that miss values (``counts`` of ``rows``) with ``fill_missing`` unset."""
    listed = ", ".join(f"{name!r} ({count} of {rows})" for name, count in counts.items())
    return ArgumentError(OWNER, "fill_missing", f"is not set, and columns miss values: {listed}; set "
                                                f"data.fill_missing=mean|zero|drop")


def missing_count(column: Any) -> int:
    """A column's missing values: nulls, and NaN in a float column."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    count = int(column.null_count)
    # A float column whose sum is a number holds no NaN: summing is cheaper than counting.
    if pat.is_floating(column.type) and not (_summable(column.type) and _is_number(pc.sum(column).as_py())):
        count += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    return count


def _summable(kind: Any) -> bool:
    import pyarrow.types as pat

    return bool(pat.is_float32(kind) or pat.is_float64(kind))


def _is_number(value: float | None) -> bool:
    return value is None or not math.isnan(value)


def complete_rows(table: Any, columns: Sequence[str]) -> Any:
    """A boolean Arrow array: whether each row has a value in every one of ``columns`` (``None``: no columns)."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    keep = None
    for name in columns:
        column = table.column(name)
        ok = pc.is_valid(column)
        if pat.is_floating(column.type):
            ok = pc.and_kleene(ok, pc.invert(pc.fill_null(pc.is_nan(column), True)))
        keep = ok if keep is None else pc.and_kleene(keep, ok)
    return keep


def drop_missing_rows(table: Any, columns: Sequence[str]) -> Any:
    """``table`` without the rows that miss a value in any of ``columns``."""
    keep = complete_rows(table, columns)
    return table if keep is None else table.filter(keep)


def check_predict_columns(table: Any, columns: Sequence[str], *, target: str, id_column: str | None,
                          drop: Sequence[str], listed: bool, source: str) -> None:
    """A file to predict on must hold every feature column (and ``id_column``); the target may be absent.

    Columns are read by name, never by position. When the features were not ``listed`` (every
    column of the training files but the target was an input), a column the training files lacked
    is refused too: the file is not the table the model was trained on.
    """
    present = list(table.column_names)
    missing = [name for name in columns if name not in present]
    if missing:
        raise ArgumentError(OWNER, "predict_path", f"{source} lacks the feature columns {missing} the model was "
                                                   f"trained on (its columns: {', '.join(present[:30])})")
    if id_column is not None and id_column not in present:
        raise ArgumentError(OWNER, "id_column", f"{id_column!r} is not a column of {source}."
                                                f"{did_you_mean(id_column, present)}")
    known = {*columns, target, *drop, *([id_column] if id_column is not None else [])}
    extra = [name for name in present if name not in known]
    if extra and not listed:
        raise ArgumentError(OWNER, "predict_path", f"{source} has columns the training files lack: {extra}; "
                                                   f"remove them, or name the model's inputs with data.features=[...]")
    check_flat(table, columns)
