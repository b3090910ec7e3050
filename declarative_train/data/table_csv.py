"""A CSV (or TSV) file as one Arrow table, read fast and in about the table's memory.

pyarrow's ``read_csv`` parses fast, on several threads, but holds about three times the table while
it converts; its streaming reader ``open_csv`` holds about the table, but parses on one thread and
about 1.4 times slower per byte. :func:`read_csv_file` cuts the file at line breaks into parts of
at most :data:`PART_BYTES` and parses each with ``read_csv`` on one of a few threads (the later
parts with the column names and types the first part gave): ``read_csv``'s speed, with a part per
thread in memory on top of the table.

Each part's table is copied into one chunk per column. Column buffers of the blocks (tens of KB
each, every column's in turn) share the allocator's pages; a column dropped once it is encoded
would then free no page until every other column had gone too. A chunk per part and column is
one allocation of its own (hundreds of KB), which goes back when its column is dropped.

Where a part cannot be parsed alone (a quoted value holding the line break it was cut at, a line
longer than a part) the file is read by the streaming reader in one part; where a later value does
not fit a column's type, ``read_csv`` reads the whole file and widens the type to hold every value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from declarative_train.data.table_threads import in_order

#: Bytes of the file parsed at once by one thread, at most (a part ends with the last line break in it).
PART_BYTES = 16 << 20
#: The first part, parsed before the others start (its column types are theirs), is smaller.
FIRST_PART_BYTES = 4 << 20
#: How far before a planned cut a line break is looked for.
_LINE_WINDOW = 1 << 16
#: The streaming reader's batches are copied into chunks of about this size (:func:`_gathered`).
CHUNK_BYTES = 16 << 20
#: Suffixes of compressed files, which are read as a whole (a part cannot start mid-stream).
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


class _NoCut(Exception):
    """No line break near a planned cut, or a part ends within a quoted value: the file is not read in parts."""


def read_csv_file(file: Path, delimiter: str, threads: int) -> Any:
    """``file`` as a ``pyarrow.Table``, the same table ``pyarrow.csv.read_csv`` reads, parsed on up
    to ``threads`` threads. Raises ``pyarrow.ArrowInvalid`` for a file that is no CSV."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    parse = pa_csv.ParseOptions(delimiter=delimiter)
    try:
        if file.suffix.lower() not in COMPRESSED:
            try:
                return _read_in_parts(pa, file, parse, threads)
            except (_NoCut, pa.ArrowInvalid):
                pass  # no cut, a cut within quotes, or a later value the first part's types cannot hold
        with pa_csv.open_csv(file, parse_options=parse) as reader:
            return _gathered(pa, reader, reader.schema)
    except pa.ArrowInvalid:
        return pa_csv.read_csv(file, parse_options=parse)


def _read_in_parts(pa: Any, file: Path, parse: Any, threads: int) -> Any:
    """``file`` parsed in the parts :func:`_line_cuts` finds, the first one first (it gives the
    column names and types), the others on ``threads`` threads."""
    import pyarrow.csv as pa_csv

    cuts = _line_cuts(file)
    first = _parse_part(pa, file, cuts[0], cuts[1], {"parse_options": parse})
    # The later parts parse on the threads that take them (use_threads=False): pyarrow's own pool
    # has OMP_NUM_THREADS threads, maybe one.
    options = {"read_options": pa_csv.ReadOptions(use_threads=False, column_names=first.schema.names),
               "convert_options": pa_csv.ConvertOptions(column_types=first.schema), "parse_options": parse}
    later = in_order(list(zip(cuts[1:-1], cuts[2:])), lambda span: _parse_part(pa, file, span[0], span[1], options),
                      threads, pa.default_memory_pool())
    tables = [first, *later]
    if any(_ends_in_quotes(pa, table) for table in tables[:-1]):
        raise _NoCut
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _line_cuts(file: Path) -> list[int]:
    """``0``, the offsets where the later parts start (just after a line break, the first at most
    :data:`FIRST_PART_BYTES` in, the others at most :data:`PART_BYTES` apart), and the file's size."""
    size = file.stat().st_size
    cuts = [0]
    with open(file, "rb") as handle:
        while size - cuts[-1] > (part := FIRST_PART_BYTES if len(cuts) == 1 else PART_BYTES):
            planned = cuts[-1] + part
            start = max(planned - _LINE_WINDOW, cuts[-1])
            handle.seek(start)
            end = handle.read(planned - start).rfind(b"\n")
            if end < 0:
                raise _NoCut  # no line break near the planned cut
            cuts.append(start + end + 1)
    return [*cuts, size]


def _parse_part(pa: Any, file: Path, start: int, end: int, options: dict[str, Any]) -> Any:
    """Bytes ``start:end`` of ``file`` parsed by ``read_csv`` with ``options``, in one chunk per column.

    The bytes are read into a buffer of Arrow's memory pool: a ``bytes`` object would come from
    the C allocator, whose arenas for the parsing threads kept tens of MB after the file was read.
    """
    import pyarrow.csv as pa_csv

    buffer = pa.allocate_buffer(end - start)
    with open(file, "rb") as handle:
        handle.seek(start)
        if handle.readinto(buffer) != end - start:
            raise OSError(f"{file} changed while it was read")
    return pa_csv.read_csv(pa.BufferReader(buffer), **options).combine_chunks()


def _ends_in_quotes(pa: Any, part: Any) -> bool:
    """Whether a part's text ended within a quoted value, as far as its parse shows.

    A value quoted across the line break a part was cut at runs to the part's end, and pyarrow
    takes a quote left open at the end for closed there. Unless it is the last column, the row
    comes out short, which is an error; in the last column the value ends with the cut's line
    break. (A value that really ends with a line break has the file read again in one part: slower,
    not wrong.)
    """
    last = part.schema.field(part.num_columns - 1).type
    if not part.num_rows or not (pa.types.is_string(last) or pa.types.is_large_string(last)):
        return False
    value = part.column(part.num_columns - 1)[-1].as_py()
    return value is not None and value.endswith("\n")


def _gathered(pa: Any, batches: Any, schema: Any) -> Any:
    """The record ``batches`` of a streaming reader as one table, copied into chunks of about
    :data:`CHUNK_BYTES` as they come (a chunk per column is an allocation of its own)."""
    chunks, pending, size = [], [], 0
    for batch in batches:
        pending.append(batch)
        size += batch.nbytes
        if size >= CHUNK_BYTES:
            chunks.append(pa.Table.from_batches(pending, schema=schema).combine_chunks())
            pending, size = [], 0
    if pending or not chunks:
        chunks.append(pa.Table.from_batches(pending, schema=schema).combine_chunks())
    return chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)
