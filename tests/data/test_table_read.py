"""Reading a CSV file in parts on several threads, and in large chunks: the same table as ``read_csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pa = pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it
import pyarrow.csv as pa_csv  # noqa: E402

from declarative_train.data import TableData, table_read  # noqa: E402
from declarative_train.data.table_read import read_table  # noqa: E402


@pytest.fixture
def three_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CSV file over a few bytes is read in three parts, and gathered into chunks of a few KB."""
    monkeypatch.setattr(table_read, "_CSV_PART_BYTES", 16)
    monkeypatch.setattr(table_read, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(table_read, "worker_threads", lambda: 3)


def lines(rows: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [f'{rng.normal():.6f},{rng.integers(-9, 9)},"k{i % 5}, quoted ""{i % 3}""",{i % 2}' for i in range(rows)]


@pytest.mark.parametrize("ending,last_newline", [("\n", True), ("\n", False), ("\r\n", True)])
def test_a_csv_read_in_parts_equals_read_csv(tmp_path: Path, three_parts: None, ending: str,
                                             last_newline: bool) -> None:
    path = tmp_path / "t.csv"
    text = ending.join(["x,n,text,label", *lines(3000)]) + (ending if last_newline else "")
    path.write_bytes(text.encode())
    cuts = table_read._line_cuts(path, 3)
    assert len(cuts) == 3 and all(text.encode()[cut - 1:cut] == b"\n" for cut in cuts[1:])
    table = read_table(path)
    assert table.equals(pa_csv.read_csv(path))
    assert table.schema.field("n").type == pa.int64() and table.column("text")[0].as_py() == 'k0, quoted "0"'


def test_batches_are_copied_into_chunks_of_about_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [pa.record_batch({"x": np.arange(1000.0) + 1000 * i, "c": [f"v{i}"] * 1000}) for i in range(10)]
    monkeypatch.setattr(table_read, "_CHUNK_BYTES", 3 * batches[0].nbytes)
    table = table_read._gathered(pa, iter(batches), batches[0].schema)
    assert table.equals(pa.Table.from_batches(batches))
    assert [len(chunk) for chunk in table.column("x").chunks] == [3000, 3000, 3000, 1000]
    assert table.column("x").chunk(0).buffers()[1].address != batches[0].column(0).buffers()[1].address
    empty = table_read._gathered(pa, iter([]), batches[0].schema)
    assert empty.num_rows == 0 and empty.schema == batches[0].schema


def test_a_tsv_and_a_compressed_csv(tmp_path: Path, three_parts: None) -> None:
    table = pa.table({"x": np.arange(2000) / 7, "c": [f"v{i % 4}" for i in range(2000)]})
    tsv = tmp_path / "t.tsv"
    pa_csv.write_csv(table, tsv, write_options=pa_csv.WriteOptions(delimiter="\t"))
    assert read_table(tsv).equals(table)
    compressed = tmp_path / "t.csv.gz"
    with pa.output_stream(compressed) as stream:  # compressed by its extension; read in one part
        pa_csv.write_csv(table, stream)
    assert read_table(compressed).equals(table)


def test_a_later_part_that_widens_a_column_reads_as_read_csv_does(tmp_path: Path, three_parts: None) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(3000)) + "0.5,1\n")
    table = read_table(path)  # the last part holds a value the first part's integer type cannot
    assert table.schema.field("a").type == pa.float64() and table.equals(pa_csv.read_csv(path))


def test_a_cut_starts_a_line_within_its_window(tmp_path: Path, three_parts: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "1," + "2" * 3000 + "\n" + "3,4\n" * 10)
    # both planned cuts fall in the long line: the second starts the line after the first's
    assert table_read._line_cuts(path, 3) == [0, 3007, 3011]
    assert read_table(path).equals(pa_csv.read_csv(path))
    monkeypatch.setattr(table_read, "_LINE_WINDOW", 64)
    assert table_read._line_cuts(path, 3) == [0]  # no line break near a planned cut: one part


@pytest.mark.parametrize("last", [True, False])
def test_a_cut_within_a_quoted_value_reads_the_file_in_one_part(tmp_path: Path, three_parts: None,
                                                                monkeypatch: pytest.MonkeyPatch, last: bool) -> None:
    """A quoted value spans the middle of the file, where the cuts fall; its lines read as rows on
    their own, so a later part parses without an error. In a middle column the first part's last
    row comes out short; in the last column it ends with the cut's line break."""
    rows = [f"{i},k{i % 3},plain" for i in range(40)]
    long = '"' + "5,k1,inner\n" * 400 + '5,k1,inner"'
    rows.insert(20, f"99,{long},plain" if not last else f"99,k0,{long}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["n,c,text", *rows]) + "\n")
    cuts = table_read._line_cuts(path, 3)
    start = path.read_bytes().index(b'"')
    assert len(cuts) == 3 and all(start < cut < start + len(long) for cut in cuts[1:])
    expected = pa_csv.read_csv(path)
    monkeypatch.setattr(pa_csv, "read_csv", None)  # read again by the streaming reader, in one part
    table = read_table(path)
    assert table.equals(expected) and table.num_rows == 41


def test_encodings_from_parts_equal_those_of_one_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["x,n,text,label", *lines(5000)]) + "\n")
    whole = TableData(path=str(path), target="label")
    whole.setup()
    monkeypatch.setattr(table_read, "_CSV_PART_BYTES", 16)
    monkeypatch.setattr(table_read, "_CHUNK_BYTES", 4096)
    monkeypatch.setattr(table_read, "worker_threads", lambda: 2)
    parts = TableData(path=str(path), target="label")
    parts.setup()
    for split in ("train", "val", "test"):
        for mine, theirs in zip(parts.datasets[split].tensors, whole.datasets[split].tensors):
            assert torch.equal(mine, theirs)
