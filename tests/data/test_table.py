"""``TableData``: formats, encodings fitted on the train split, missing values, the task decision."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

pa = pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.json  # noqa: E402, F401 - imported before a test hides pyarrow
import pyarrow.parquet as pq  # noqa: E402

from declarative_train.data import SklearnTable, TableData, table_csv  # noqa: E402
from declarative_train.data import table as table_module  # noqa: E402
from declarative_train.data.table_arrays import float_values, small_integers  # noqa: E402
from declarative_train.data.table_encode import (  # noqa: E402
    MAX_AUTO_CLASSES,
    TargetCode,
    encode_target,
    fit_text,
)
from declarative_train.data.table_read import read_table  # noqa: E402
from declarative_train.data.table_splits import file_order  # noqa: E402
from declarative_train.errors import ArgumentError, ConfigError  # noqa: E402


def write(table: Any, path: Path) -> Path:
    """``table`` (a dict of columns or a pyarrow Table) in the format of ``path``'s extension."""
    table = table if isinstance(table, pa.Table) else pa.table(table)
    kind = path.suffix
    if kind == ".parquet":
        pq.write_table(table, path)
    elif kind == ".jsonl":
        rows = table.to_pylist()
        import json

        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(delimiter="\t" if kind == ".tsv" else ","))
    return path


def small(rows: int = 40, seed: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(3, 2, rows).round(3).tolist(), "n": rng.integers(0, 9, rows).tolist(),
            "color": [["red", "green", "blue"][i % 3] for i in range(rows)],
            "label": [["yes", "no"][i % 2] for i in range(rows)]}


def table_data(**kwargs: Any) -> TableData:
    data = TableData(**{"target": "label", **kwargs})
    data.setup()
    return data


@pytest.mark.parametrize("suffix", [".tsv", ".parquet", ".jsonl"])
def test_every_format_reads_the_same_as_csv(tmp_path: Path, suffix: str) -> None:
    columns = small()
    reference = table_data(path=str(write(columns, tmp_path / "t.csv")))
    other = table_data(path=str(write(columns, tmp_path / f"t{suffix}")))
    assert other.data_shapes() == reference.data_shapes()
    for split in ("train", "val", "test"):
        for mine, theirs in zip(other.datasets[split].tensors, reference.datasets[split].tensors):
            torch.testing.assert_close(mine, theirs)


def test_format_from_the_setting_when_the_extension_does_not_say(tmp_path: Path) -> None:
    path = write(small(), tmp_path / "t.tsv").rename(tmp_path / "t.txt")
    with pytest.raises(ArgumentError, match="path cannot tell the format"):
        table_data(path=str(path))
    assert table_data(path=str(path), format="tsv").num_features == 5


def test_standardisation_uses_the_train_split_only(tmp_path: Path) -> None:
    train = write({"x": [1.0, 2.0, 3.0, 4.0], "label": ["a", "b", "a", "b"]}, tmp_path / "train.csv")
    test = write({"x": [100.0, 2.5], "label": ["a", "b"]}, tmp_path / "test.csv")
    data = table_data(train_path=str(train), test_path=str(test), val_fraction=0.0)
    mean, std = 2.5, float(np.std([1, 2, 3, 4], ddof=1))
    torch.testing.assert_close(data.datasets["test"].tensors[0][:, 0], torch.tensor([(100 - mean) / std, 0.0]))
    train_x = data.datasets["train"].tensors[0][:, 0]
    assert abs(float(train_x.mean())) < 1e-6 and abs(float(train_x.std()) - 1) < 1e-6
    assert set(data.datasets) == {"train", "test"}


def test_text_columns_are_one_hot_and_an_unseen_category_is_all_zeros(tmp_path: Path) -> None:
    train = write({"x": [1.0, 2.0, 3.0, 4.0], "color": ["red", "blue", "red", "blue"], "label": [0, 1, 0, 1]},
                  tmp_path / "train.csv")
    test = write({"x": [1.0, 2.0], "color": ["blue", "green"], "label": [0, 1]}, tmp_path / "test.csv")
    data = table_data(train_path=str(train), test_path=str(test), val_fraction=0.0)
    assert data.num_features == 3  # x, color=blue, color=red (sorted)
    assert data.columns[1].categories == ("blue", "red")
    torch.testing.assert_close(data.datasets["test"].tensors[0][:, 1:], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_missing_values_are_an_error_naming_each_column_and_count(tmp_path: Path) -> None:
    path = write({"x": [1.0, None, 3.0, float("nan")], "c": ["a", None, "b", "a"], "label": [0, 1, 0, 1]},
                 tmp_path / "t.parquet")
    with pytest.raises(ArgumentError, match=r"fill_missing is not set, and columns miss values: 'x' \(2 of 4\), "
                                            r"'c' \(1 of 4\); set data.fill_missing=mean\|zero\|drop") as caught:
        table_data(path=str(path), val_fraction=0.0, test_fraction=0.0)
    assert caught.value.argument == "fill_missing"


@pytest.mark.parametrize("mode,expected", [("mean", [1.0, 2.0, 3.0, 2.0]), ("zero", [1.0, 0.0, 3.0, 0.0])])
def test_fill_missing_mean_and_zero(tmp_path: Path, mode: str, expected: list[float]) -> None:
    path = write({"x": [1.0, None, 3.0, float("nan")], "c": ["a", None, "b", "a"], "label": [0, 1, 0, 1]},
                 tmp_path / "t.parquet")
    data = table_data(path=str(path), val_fraction=0.0, test_fraction=0.0, fill_missing=mode, standardize=False,
                      split_seed=0)
    features = data.datasets["train"].tensors[0]
    assert sorted(features[:, 0].tolist()) == sorted(expected)  # the split shuffles the rows
    assert sorted(features[:, 1:].sum(1).tolist()) == [0.0, 1.0, 1.0, 1.0]  # the missing text value: all zeros


def test_fill_missing_drop_drops_the_rows(tmp_path: Path) -> None:
    path = write({"x": [1.0, None, 3.0, float("nan"), 5.0], "label": [0, 1, None, 1, 1]}, tmp_path / "t.parquet")
    data = table_data(path=str(path), val_fraction=0.0, test_fraction=0.0, fill_missing="drop", standardize=False)
    assert sorted(data.datasets["train"].tensors[0][:, 0].tolist()) == [1.0, 5.0]


def test_a_missing_target_cannot_be_filled(tmp_path: Path) -> None:
    path = write({"x": [1.0, 2.0, 3.0], "label": [0, None, 1]}, tmp_path / "t.parquet")
    with pytest.raises(ArgumentError, match="target column 'label' misses 1 of 3 values"):
        table_data(path=str(path), fill_missing="mean")


def labels(values: list[Any], tmp_path: Path, **kwargs: Any) -> TableData:
    rows = len(values)
    return table_data(path=str(write({"x": list(map(float, range(rows))), "label": values}, tmp_path / "t.parquet")),
                      val_fraction=0.0, test_fraction=0.0, **kwargs)


def test_task_auto_text_and_few_integers_are_classes(tmp_path: Path) -> None:
    text = labels(["b", "a", "c", "a"], tmp_path)
    assert text.data_shapes() == {"num_features": 1, "task": "classification", "num_classes": 3,
                                  "class_names": ["a", "b", "c"]}
    assert text.target_code is not None and "string" in text.target_code.reason
    numbers = labels([7, 3, 5, 3, 7], tmp_path)  # remapped to indices, names in sorted order
    assert numbers.class_names == ["3", "5", "7"]
    assert sorted(numbers.datasets["train"].tensors[1].tolist()) == [0, 0, 1, 2, 2]
    assert labels([True, False, True], tmp_path).num_classes == 2


def test_task_auto_floats_and_many_integers_are_regression(tmp_path: Path) -> None:
    floats = labels([0.5, 1.5, 2.5, 3.5], tmp_path)
    assert floats.data_shapes() == {"num_features": 1, "task": "regression", "target_width": 1}
    assert floats.datasets["train"].tensors[1].dtype == torch.float32
    many = labels(list(range(MAX_AUTO_CLASSES + 1)), tmp_path)
    assert many.data_shapes()["task"] == "regression"
    assert f"{MAX_AUTO_CLASSES + 1} distinct values" in (many.target_code.reason if many.target_code else "")
    assert labels(list(range(MAX_AUTO_CLASSES)), tmp_path).data_shapes()["task"] == "classification"


def test_task_set_explicitly(tmp_path: Path) -> None:
    assert labels([1, 2, 1, 2], tmp_path, task="regression").data_shapes()["task"] == "regression"
    assert labels([0.0, 1.0, 0.0], tmp_path, task="classification").class_names == ["0.0", "1.0"]
    with pytest.raises(ArgumentError, match="task is regression, but the target holds string values"):
        labels(["a", "b"], tmp_path, task="regression")


def test_regression_target_standardised_with_train_statistics(tmp_path: Path) -> None:
    data = labels([10.0, 20.0, 30.0, 40.0], tmp_path)
    assert data.target_mean == 25.0
    target = data.datasets["train"].tensors[1]
    torch.testing.assert_close(target * data.target_std + data.target_mean,
                               torch.tensor([10.0, 20.0, 30.0, 40.0])[torch.argsort(torch.argsort(target))])


@pytest.mark.parametrize("kwargs,argument,text", [
    ({"path": "nope.csv"}, "path", "path is not a file: '.*nope.csv'"),
    ({"target": "lable"}, "target", "'lable' is not a column of t.csv. Did you mean 'label'?"),
    ({"features": ["x", "colour"]}, "features", "Did you mean 'color'?"),
    ({"drop": ["nn"]}, "drop", "Did you mean 'n'?"),
])
def test_bad_settings_name_their_argument(tmp_path: Path, kwargs: dict[str, Any], argument: str, text: str) -> None:
    path = write(small(), tmp_path / "t.csv")
    with pytest.raises(ArgumentError, match=text) as caught:
        table_data(**{"path": str(path), **kwargs})
    assert caught.value.argument == argument


def test_a_single_class_and_nested_columns_are_refused(tmp_path: Path) -> None:
    one = write({"x": [1.0, 2.0], "label": ["a", "a"]}, tmp_path / "one.csv")
    with pytest.raises(ArgumentError, match="holds a single class"):
        table_data(path=str(one))
    nested = write({"x": [1.0, 2.0], "tags": [[1, 2], [3]], "label": ["a", "b"]}, tmp_path / "nested.parquet")
    with pytest.raises(ArgumentError, match=r"features holds columns that are neither numbers nor text: 'tags' \(list<element: int64>\)"):
        table_data(path=str(nested))
    assert table_data(path=str(nested), drop=["tags"], val_fraction=0.0, test_fraction=0.0).num_features == 1


def test_too_many_categories(tmp_path: Path) -> None:
    path = write({"id": [f"r{i}" for i in range(30)], "x": [1.0] * 30, "label": [0, 1] * 15}, tmp_path / "t.csv")
    with pytest.raises(ArgumentError, match="max_categories is 10, text column 'id' has"):
        table_data(path=str(path), max_categories=10)


def test_shapes_given_must_match_the_data(tmp_path: Path) -> None:
    path = write(small(), tmp_path / "t.csv")
    with pytest.raises(ArgumentError, match="num_classes is 3 in the config, but the data has 2"):
        table_data(path=str(path), num_classes=3)
    assert table_data(path=str(path), num_features=5, num_classes=2).class_names == ["no", "yes"]


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(small(), tmp_path / "t.csv")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'declarative_train\[tables\]'"):
        read_table(path)


def test_the_sklearn_table_writes_its_csv_once(tmp_path: Path) -> None:
    data = SklearnTable(dataset="wine", path=str(tmp_path / "wine.csv"), target="cultivar")
    assert data.data_shapes() == {"num_features": 16, "task": "classification", "num_classes": 3,
                                  "class_names": ["barbera", "barolo", "grignolino"]}
    written = (tmp_path / "wine.csv").stat().st_mtime_ns
    SklearnTable(dataset="wine", path=str(tmp_path / "wine.csv"), target="cultivar").setup()
    assert (tmp_path / "wine.csv").stat().st_mtime_ns == written
    assert len(data.datasets["train"]) + len(data.datasets["val"]) + len(data.datasets["test"]) == 178


def mixed(rows: int, seed: int) -> dict[str, list[Any]]:
    """Numbers with gaps, integers, booleans and text with gaps and a rare category: every kind of column."""
    rng = np.random.default_rng(seed)
    gaps = rng.random(rows) < 0.05
    return {"a": [None if gap else float(v) for gap, v in zip(gaps, rng.normal(3, 2, rows))],
            "n": rng.integers(-50, 50, rows).tolist(), "flag": (rng.random(rows) < 0.3).tolist(),
            "color": [None if r < 0.03 else "rare" if r > 0.9995 else ["red", "green", "blue", "teal"][int(r * 97) % 4]
                      for r in rng.random(rows)]}


def reference_features(columns: dict[str, list[Any]], train_rows: np.ndarray, fill: str) -> np.ndarray:
    """The encoding written plainly: numbers standardised with the train rows' statistics (taken in
    file order, missing values filled first), text one-hot over the train rows' sorted categories."""
    encoded = []
    for values in columns.values():
        if any(isinstance(v, str) for v in values):
            categories = sorted({values[i] for i in train_rows if values[i] is not None})
            one_hot = np.zeros((len(values), len(categories)), np.float32)
            for row, value in enumerate(values):
                if value in categories:
                    one_hot[row, categories.index(value)] = 1.0
            encoded.append(one_hot)
            continue
        x = np.array([np.nan if v is None else float(v) for v in values])
        train = x[np.sort(train_rows)]
        fill_value = train[~np.isnan(train)].mean() if fill == "mean" else 0.0
        train = np.where(np.isnan(train), fill_value, train)
        std = train.std(ddof=1)
        encoded.append(((np.where(np.isnan(x), fill_value, x) - train.mean()) / (std if std > 1e-6 else 1.0))
                       .astype(np.float32)[:, None])
    return np.concatenate(encoded, axis=1)


def split_rows(rows: int, seed: int, test_fraction: float = 0.15) -> dict[str, np.ndarray]:
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(seed)).numpy()
    n_test, n_val = int(round(rows * test_fraction)), int(round(rows * 0.15))
    return {"train": order[n_test + n_val:], "val": order[n_test:n_test + n_val], "test": order[:n_test]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_encoded_tensors_equal_a_plain_reference_bit_for_bit(tmp_path: Path, suffix: str) -> None:
    rows = 10_000  # several blocks of rows
    columns = mixed(rows, seed=1)
    labels = [["no", "yes", "maybe"][i % 3] for i in range(rows)]
    data = table_data(path=str(write({**columns, "label": labels}, tmp_path / f"t{suffix}")), fill_missing="mean",
                      split_seed=3)
    parts = split_rows(rows, seed=3)
    if suffix == ".csv":  # pyarrow reads an empty CSV field as the text "" (a category), not as missing
        columns["color"] = ["" if v is None else v for v in columns["color"]]
    features = reference_features(columns, parts["train"], "mean")
    classes = np.array([["maybe", "no", "yes"].index(v) for v in labels])
    for split, taken in parts.items():
        inputs, target = data.datasets[split].tensors
        assert inputs.dtype == torch.float32 and inputs.is_contiguous() and target.dtype == torch.int64
        assert torch.equal(inputs, torch.from_numpy(features[taken]))
        assert torch.equal(target, torch.from_numpy(classes[taken]))
        assert data.row_ids(split) == ("row", taken.tolist())


def test_dropped_rows_split_files_and_a_regression_target_equal_the_reference(tmp_path: Path) -> None:
    train_columns, test_columns = mixed(6_000, seed=2), mixed(500, seed=4)
    test_columns["color"][:3] = ["violet", "violet", "rare"]  # a category the train file lacks: all zeros
    rng = np.random.default_rng(5)
    train_target, test_target = rng.normal(50, 10, 6_000).tolist(), rng.normal(50, 10, 500).tolist()
    data = table_data(train_path=str(write({**train_columns, "label": train_target}, tmp_path / "train.parquet")),
                      test_path=str(write({**test_columns, "label": test_target}, tmp_path / "test.parquet")),
                      fill_missing="drop", split_seed=7)
    kept = {name: np.array([i for i in range(len(c["a"])) if c["a"][i] is not None and c["color"][i] is not None])
            for name, c in (("train", train_columns), ("test", test_columns))}
    train_kept = {k: [v[i] for i in kept["train"]] for k, v in train_columns.items()}
    test_kept = {k: [v[i] for i in kept["test"]] for k, v in test_columns.items()}
    parts = split_rows(len(kept["train"]), seed=7, test_fraction=0.0)
    parts["test"] = np.arange(len(kept["test"]))
    both = {k: train_kept[k] + test_kept[k] for k in train_kept}  # the train statistics apply to the test file
    features = reference_features(both, parts["train"], "drop")
    target = np.array(train_target)[kept["train"]]
    train_rows = np.sort(parts["train"])
    mean, std = target[train_rows].mean(), target[train_rows].std(ddof=1)
    targets = {"train": target, "val": target, "test": np.array(test_target)[kept["test"]]}
    offset = {"train": 0, "val": 0, "test": len(kept["train"])}
    for split, taken in parts.items():
        inputs, encoded_target = data.datasets[split].tensors
        assert torch.equal(inputs, torch.from_numpy(features[offset[split] + taken]))
        assert torch.equal(encoded_target, torch.from_numpy(((targets[split][taken] - mean) / std).astype(np.float32)))
        assert data.row_ids(split) == ("row", kept["test" if split == "test" else "train"][taken].tolist())


@pytest.mark.parametrize("lowest", [0, -2])  # integer classes counted, or (negative) hashed
def test_a_parquet_file_of_many_row_groups_equals_the_reference(tmp_path: Path, lowest: int) -> None:
    """Parquet text is read as dictionaries, one per row group (the rare category in a few of them):
    the codes are those of one table; integer classes are indices in sorted order."""
    rows = 10_000
    columns = mixed(rows, seed=6)
    classes = np.arange(rows) * 7 % 4
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({**columns, "label": (classes + lowest).tolist()}), path, row_group_size=700)
    assert pa.types.is_dictionary(read_table(path).schema.field("color").type)
    data = table_data(path=str(path), fill_missing="mean", split_seed=3)
    parts = split_rows(rows, seed=3)
    features = reference_features(columns, parts["train"], "mean")
    for split, taken in parts.items():
        inputs, target = data.datasets[split].tensors
        assert torch.equal(inputs, torch.from_numpy(features[taken]))
        assert torch.equal(target, torch.from_numpy(classes[taken]))
    assert data.class_names == [str(lowest + i) for i in range(4)]
    text = table_data(path=str(write({"x": [1.0, 2.0, 3.0, 4.0], "label": ["b", "a", "b", "a"]},
                                     tmp_path / "text.parquet")), val_fraction=0.0, test_fraction=0.0)
    assert text.target_code is not None and text.target_code.reason == "the target holds string values"


def test_a_text_column_keeps_its_codes_when_max_categories_needs_a_wider_type(tmp_path: Path) -> None:
    train = write({"c": ["a", "b", "a", "b"] * 5, "label": [0, 1] * 10}, tmp_path / "train.csv")
    test = write({"c": ["b", "z"], "label": [0, 1]}, tmp_path / "test.csv")
    data = table_data(train_path=str(train), test_path=str(test), val_fraction=0.0, max_categories=1000)
    assert data.datasets["test"].tensors[0].tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_a_csv_whose_later_block_widens_a_column_reads_as_read_csv_does(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # In parts of 64 KB, and over one 1 MB block: the parts and the streaming reader take 'a' for
    # integers from the first part or block, and then read_csv reads the file whole.
    monkeypatch.setattr(table_csv, "FIRST_PART_BYTES", 1 << 16)
    monkeypatch.setattr(table_csv, "PART_BYTES", 1 << 16)
    rows = 200_000
    path = tmp_path / "t.csv"
    path.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(rows)) + "0.5,1\n")
    table = read_table(path)
    assert table.schema.field("a").type == pa.float64() and table.equals(pa_csv.read_csv(path))
    assert table.column("a")[rows].as_py() == 0.5


@pytest.mark.parametrize("classes", [(0, 1, 2), (1, 2, 5)])  # indices themselves, or found by bisection
def test_integer_class_indices_and_a_value_of_no_class(classes: tuple[int, ...]) -> None:
    code = TargetCode("label", "classification", "test", class_values=classes)
    values = [classes[2], classes[0], classes[1], classes[2]]
    assert encode_target(pa.chunked_array([values]), code).tolist() == [2, 0, 1, 2]
    unknown = encode_target(pa.chunked_array([[classes[1], 7, -1]]), code)
    assert unknown.dtype == np.int64 and unknown.tolist() == [1, -1, -1]


@pytest.mark.parametrize("chunks,shared", [([[1.5, None], [3.0], [-2.0, 4.25]], True), ([[1, 2], [None, 4]], False)])
def test_float_values_of_a_chunked_column_into_scratch(chunks: list[list[Any]], shared: bool) -> None:
    column = pa.chunked_array(chunks)
    expected = np.array([np.nan if v is None else float(v) for chunk in chunks for v in chunk])
    scratch = np.full(10, 7.0)
    values = float_values(column, scratch)  # float64 chunks are copied into the scratch; integers are cast
    assert np.shares_memory(values, scratch) == shared and np.array_equal(values, expected, equal_nan=True)
    assert np.array_equal(float_values(column), expected, equal_nan=True)
    single = pa.chunked_array([[1.0, 2.0]])
    assert not np.shares_memory(float_values(single, scratch), scratch)  # one chunk: a view of its buffer


def test_batches_are_made_from_the_encoded_columns_as_the_whole_split_is(tmp_path: Path) -> None:
    columns = mixed(300, seed=6)
    data = table_data(path=str(write({**columns, "label": [i % 3 for i in range(300)]}, tmp_path / "t.parquet")),
                      fill_missing="zero", batch_size=16)
    train = data.datasets["train"]
    inputs, target = train.tensors
    batches = list(data.dataloader("train", shuffle=True, generator=torch.Generator().manual_seed(1)))
    stock = list(DataLoader(TensorDataset(inputs, target), batch_size=16, shuffle=True,
                            generator=torch.Generator().manual_seed(1)))
    assert len(batches) == len(stock) == -(-len(train) // 16)
    for (batch_inputs, batch_target), (want_inputs, want_target) in zip(batches, stock):
        assert torch.equal(batch_inputs, want_inputs) and torch.equal(batch_target, want_target)
    data.batch_fetch = False  # one row at a time through __getitem__, the same values
    first = next(iter(data.dataloader("test")))
    assert all(torch.equal(a, b[:16]) for a, b in zip(first, data.datasets["test"].tensors, strict=True))
    head = train.head(10)
    assert len(head) == 10 and torch.equal(head.tensors[0], inputs[:10])


def test_a_parquet_column_read_whole_or_a_column_at_a_time_encodes_the_same(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    columns = mixed(2_000, seed=8)
    path = write({**columns, "label": [["a", "b"][i % 2] for i in range(2_000)]}, tmp_path / "t.parquet")
    by_column = table_data(path=str(path), fill_missing="mean")
    whole = read_table
    monkeypatch.setattr(table_module, "read_table", lambda *args, by_column=False, **kwargs: whole(*args, **kwargs))
    read_whole = table_data(path=str(path), fill_missing="mean")
    for split in ("train", "val", "test"):
        for a, b in zip(by_column.datasets[split].tensors, read_whole.datasets[split].tensors):
            assert torch.equal(a, b)


def test_missing_values_are_reported_before_a_column_that_cannot_be_encoded(tmp_path: Path) -> None:
    path = write({"c": [f"k{i}" for i in range(30)], "x": [None, *range(29)], "label": [i % 2 for i in range(30)]},
                 tmp_path / "t.parquet")
    with pytest.raises(ArgumentError, match=r"columns miss values: 'x' \(1 of 30\)"):
        table_data(path=str(path), max_categories=5)
    with pytest.raises(ArgumentError, match="max_categories is 5, text column 'c'"):
        table_data(path=str(path), max_categories=5, fill_missing="zero")


def test_a_parquet_column_that_cannot_be_read_names_the_file_setting(tmp_path: Path) -> None:
    path = write({"x": np.random.default_rng(0).normal(size=50_000), "label": [i % 2 for i in range(50_000)]},
                 tmp_path / "t.parquet")
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    data = bytearray(path.read_bytes())
    start = column.data_page_offset + 64  # inside the first data page of x, past its header
    data[start:start + 4096] = bytes(4096)
    path.write_bytes(bytes(data))
    with pytest.raises(ArgumentError, match=r"cannot read column 'x' of .*t.parquet") as caught:
        table_data(path=str(path))
    assert caught.value.argument == "path"


@pytest.mark.parametrize("size", [0, 1, 5, (1 << 16) + 1, 150_001])
def test_file_order_sorts_distinct_rows(size: int) -> None:
    rows = np.random.default_rng(size).permutation(size)[:size * 3 // 4]
    assert np.array_equal(file_order(rows, size), np.sort(rows))


@pytest.mark.parametrize("dictionary", [False, True])  # CSV text, or Parquet's dictionary columns
def test_categories_first_seen_late_or_only_outside_the_train_rows(dictionary: bool) -> None:
    """The categories are looked for slice by slice and the search stops once every value is seen:
    one that first occurs far into the train rows is a category, one outside them is not."""
    rows = 200_000  # several slices
    values = ["a" if i % 2 else "b" for i in range(rows)]
    values[150_000], values[150_001], values[7] = "late", "held out", None
    column = pa.chunked_array([pa.array(values)])
    if dictionary:
        column = pc.dictionary_encode(column)
    train_rows = np.delete(np.arange(rows), 150_001)
    code, codes = fit_text("t", column, train_rows, 10)
    assert code.categories == ("a", "b", "late")
    assert codes[150_000] == 2 and codes[150_001] == -1 and codes[7] == -1 and codes[0] == 1


def test_small_integer_classes_are_every_value_of_every_column() -> None:
    first, second = pa.chunked_array([pa.array([0, 2] * 40_000 + [5])]), pa.chunked_array([pa.array([1, 3])])
    assert small_integers([first, second]) == [0, 1, 2, 3, 5]
    assert small_integers([pa.chunked_array([pa.array([0, 1 << 21])])]) is None  # counted only in a small range
