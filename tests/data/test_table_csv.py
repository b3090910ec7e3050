"""A CSV file read in parts on several threads (or, where it cannot be, in one part): the table ``read_csv`` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pa = pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it
import pyarrow.csv as pa_csv  # noqa: E402

from declarative_train.data import TableData, table_csv  # noqa: E402
from declarative_train.data.table_csv import read_csv_file  # noqa: E402
from declarative_train.data.table_read import read_table  # noqa: E402


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Parts of a few KB, and the number of times the file was read by the streaming reader in one part."""
    monkeypatch.setattr(table_csv, "FIRST_PART_BYTES", 1024)
    monkeypatch.setattr(table_csv, "PART_BYTES", 2048)
    monkeypatch.setattr(table_csv, "_LINE_WINDOW", 512)
    monkeypatch.setattr(table_csv, "CHUNK_BYTES", 4096)
    streamed = [0]
    open_csv = pa_csv.open_csv

    def counted(*args: Any, **kwargs: Any) -> Any:
        streamed[0] += 1
        return open_csv(*args, **kwargs)

    monkeypatch.setattr(pa_csv, "open_csv", counted)
    return streamed


def lines(rows: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [f'{rng.normal():.6f},{rng.integers(-9, 9)},"k{i % 5}, quoted ""{i % 3}""",{i % 2}' for i in range(rows)]


@pytest.mark.parametrize("ending,last_newline,threads", [("\n", True, 2), ("\n", False, 3), ("\r\n", True, 1)])
def test_a_csv_read_in_parts_equals_read_csv(tmp_path: Path, small_parts: list[int], ending: str,
                                             last_newline: bool, threads: int) -> None:
    path = tmp_path / "t.csv"
    data = (ending.join(["x,n,text,label", *lines(3000)]) + (ending if last_newline else "")).encode()
    path.write_bytes(data)
    cuts = table_csv._line_cuts(path)
    assert cuts[0] == 0 and cuts[-1] == len(data) and len(cuts) > 40
    assert cuts[1] <= 1024 and all(0 < b - a <= 2048 for a, b in zip(cuts[1:], cuts[2:]))
    assert all(data[cut - 1:cut] == b"\n" for cut in cuts[1:-1])  # each later part starts a line
    table = read_csv_file(path, ",", threads)
    assert table.equals(pa_csv.read_csv(path)) and small_parts == [0]
    assert table.column("x").num_chunks == len(cuts) - 1  # one chunk per part and column
    assert table.schema.field("n").type == pa.int64() and table.column("text")[0].as_py() == 'k0, quoted "0"'


def test_a_tsv_a_compressed_csv_and_an_empty_file(tmp_path: Path, small_parts: list[int]) -> None:
    table = pa.table({"x": np.arange(2000) / 7, "c": [f"v{i % 4}" for i in range(2000)]})
    tsv = tmp_path / "t.tsv"
    pa_csv.write_csv(table, tsv, write_options=pa_csv.WriteOptions(delimiter="\t"))
    assert read_table(tsv).equals(table) and small_parts == [0]
    compressed = tmp_path / "t.csv.gz"
    with pa.output_stream(compressed) as stream:  # compressed by its extension: read by the streaming reader
        pa_csv.write_csv(table, stream)
    assert read_table(compressed).equals(table) and small_parts == [1]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(pa.ArrowInvalid, match="Empty CSV file"):
        read_csv_file(empty, ",", 2)


def test_a_later_part_that_widens_a_column_reads_as_read_csv_does(tmp_path: Path, small_parts: list[int]) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(3000)) + "0.5,1\n")
    table = read_csv_file(path, ",", 2)  # the last part holds a value the first part's integer type cannot
    assert table.schema.field("a").type == pa.float64() and table.equals(pa_csv.read_csv(path))


def test_a_line_longer_than_the_window_is_read_in_one_part(tmp_path: Path, small_parts: list[int]) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},x\n" for i in range(200)) + "1," + "2" * 3000 + "\n" + "3,4\n" * 10)
    with pytest.raises(table_csv._NoCut):
        table_csv._line_cuts(path)
    assert read_csv_file(path, ",", 2).equals(pa_csv.read_csv(path)) and small_parts == [1]


@pytest.mark.parametrize("last", [True, False])
def test_a_cut_within_a_quoted_value_reads_the_file_in_one_part(tmp_path: Path, small_parts: list[int],
                                                                last: bool) -> None:
    """A quoted value spans a cut; its lines read as rows on their own, so the later parts parse without
    an error. In a middle column the part before the cut ends with a short row (an error); in the last
    column that part's last value ends with the cut's line break."""
    rows = [f"{i},k{i % 3},plain" for i in range(100)]
    long = '"' + "5,k1,inner\n" * 400 + '5,k1,inner"'
    rows.insert(50, f"99,{long},plain" if not last else f"99,k0,{long}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["n,c,text", *rows]) + "\n")
    start = path.read_bytes().index(b'"')
    assert any(start < cut < start + len(long) for cut in table_csv._line_cuts(path))
    table = read_csv_file(path, ",", 2)
    assert table.equals(pa_csv.read_csv(path)) and table.num_rows == 101 and small_parts == [1]


def test_batches_are_copied_into_chunks_of_about_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [pa.record_batch({"x": np.arange(1000.0) + 1000 * i, "c": [f"v{i}"] * 1000}) for i in range(10)]
    monkeypatch.setattr(table_csv, "CHUNK_BYTES", 3 * batches[0].nbytes)
    table = table_csv._gathered(pa, iter(batches), batches[0].schema)
    assert table.equals(pa.Table.from_batches(batches))
    assert [len(chunk) for chunk in table.column("x").chunks] == [3000, 3000, 3000, 1000]
    assert table.column("x").chunk(0).buffers()[1].address != batches[0].column(0).buffers()[1].address
    empty = table_csv._gathered(pa, iter([]), batches[0].schema)
    assert empty.num_rows == 0 and empty.schema == batches[0].schema


def test_encodings_from_parts_equal_those_of_one_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["x,n,text,label", *lines(5000)]) + "\n")
    whole = TableData(path=str(path), target="label")
    whole.setup()
    monkeypatch.setattr(table_csv, "FIRST_PART_BYTES", 1024)
    monkeypatch.setattr(table_csv, "PART_BYTES", 2048)
    parts = TableData(path=str(path), target="label")
    parts.setup()
    for split in ("train", "val", "test"):
        for mine, theirs in zip(parts.datasets[split].tensors, whole.datasets[split].tensors):
            assert torch.equal(mine, theirs)
