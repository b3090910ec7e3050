"""``HFData``: saved datasets and local files, splits, encodings, shapes from the data, bad input."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")  # the [hf] extra
from datasets import Array2D, Array3D, ClassLabel, Dataset, DatasetDict, Features, Value  # noqa: E402

from declarative_train.data import HFData, ReportsShapes  # noqa: E402
from declarative_train.errors import ArgumentError, ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading sets the offline switches in ``os.environ``; put them back after each test."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, os.environ.get(name, "0"))


def wine_dataset() -> Dataset:
    """sklearn's wine data: 13 float columns and a ClassLabel ``label``."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    columns: dict[str, Any] = {f"f{i}": bunch.data[:, i].tolist() for i in range(bunch.data.shape[1])}
    features = {name: Value("float64") for name in columns}
    columns["label"] = bunch.target.tolist()
    features["label"] = ClassLabel(names=["barolo", "grignolino", "barbera"])
    return Dataset.from_dict(columns, features=Features(features))


def small(rows: int = 30, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(3, 2, rows).tolist(), "n": rng.integers(0, 9, rows).tolist(),
            "color": [["red", "green", "blue"][i % 3] for i in range(rows)],
            "emb": rng.normal(size=(rows, 4)).astype("float32").tolist(),
            "label": [["yes", "no"][i % 2] for i in range(rows)]}


def saved(dataset: Dataset | DatasetDict, path: Path) -> str:
    dataset.save_to_disk(str(path))
    return str(path)


def hf(**kwargs: Any) -> HFData:
    data = HFData(**{"target": "label", **kwargs})
    data.setup()
    return data


def sizes(data: HFData) -> dict[str, int]:
    return {split: len(ds) for split, ds in data.datasets.items()}  # type: ignore[arg-type]


def test_a_saved_dataset_dict_keeps_its_named_splits(tmp_path: Path) -> None:
    parts = {"train": Dataset.from_dict(small(30)), "validation": Dataset.from_dict(small(10, 1)),
             "test": Dataset.from_dict(small(8, 2))}
    data = hf(path=saved(DatasetDict(parts), tmp_path / "d"), inputs=["x", "n"])
    assert sizes(data) == {"train": 30, "val": 10, "test": 8}
    assert isinstance(data, ReportsShapes)
    assert data.data_shapes() == {"num_features": 2, "task": "classification", "num_classes": 2,
                                  "class_names": ["no", "yes"]}
    assert data.num_features == 2 and data.class_names == ["no", "yes"]
    x = data.datasets["train"].tensors[0]  # type: ignore[attr-defined]
    assert x.dtype == torch.float32 and abs(float(x[:, 0].mean())) < 1e-6  # standardised on train


def test_splits_by_other_names_and_the_missing_ones_carved_from_train(tmp_path: Path) -> None:
    parts = {"fit": Dataset.from_dict(small(40)), "holdout": Dataset.from_dict(small(10, 1))}
    path = saved(DatasetDict(parts), tmp_path / "d")
    data = hf(path=path, inputs="x", splits={"train": "fit", "test": "holdout"}, val_fraction=0.25)
    assert sizes(data) == {"train": 30, "val": 10, "test": 10}
    with pytest.raises(ArgumentError, match="no 'train' split .*splits: fit, holdout.*data.splits=\\{train: fit\\}"):
        hf(path=path, inputs="x")


def test_one_dataset_is_split_by_fractions_with_the_seed(tmp_path: Path) -> None:
    path = saved(wine_dataset(), tmp_path / "wine")
    data = hf(path=path, val_fraction=0.2, test_fraction=0.1)
    assert sizes(data) == {"train": 124, "val": 36, "test": 18}
    again, other = hf(path=path, val_fraction=0.2, test_fraction=0.1), hf(path=path, val_fraction=0.2,
                                                                          test_fraction=0.1, split_seed=1)
    first = data.datasets["test"].tensors[0]  # type: ignore[attr-defined]
    assert torch.equal(first, again.datasets["test"].tensors[0])  # type: ignore[attr-defined]
    assert not torch.equal(first, other.datasets["test"].tensors[0])  # type: ignore[attr-defined]
    assert sizes(hf(path=path, val_fraction=0.0, test_fraction=0.0)) == {"train": 178}


def test_class_label_target_gives_its_names_in_label_order(tmp_path: Path) -> None:
    data = hf(path=saved(wine_dataset(), tmp_path / "wine"))
    assert data.data_shapes() == {"num_features": 13, "task": "classification", "num_classes": 3,
                                  "class_names": ["barolo", "grignolino", "barbera"]}
    targets = torch.cat([ds.tensors[1] for ds in data.datasets.values()])  # type: ignore[attr-defined]
    assert targets.dtype == torch.int64 and sorted(targets.unique().tolist()) == [0, 1, 2]


def test_local_csv_files_through_the_csv_builder(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    columns = {k: v for k, v in small(40).items() if k != "emb"}
    pa_csv.write_csv(pa.table(columns), tmp_path / "train.csv")
    pa_csv.write_csv(pa.table({k: v for k, v in small(10, 1).items() if k != "emb"}), tmp_path / "test.csv")
    cache = str(tmp_path / "cache")
    data = hf(builder="csv", data_files=str(tmp_path / "train.csv"), cache_dir=cache)
    assert data.data_shapes()["num_features"] == 5  # x, n, color one-hot (3)
    assert data.class_names == ["no", "yes"] and sizes(data) == {"train": 28, "val": 6, "test": 6}
    both = hf(builder="csv", data_files={"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")},
              cache_dir=cache)
    assert sizes(both) == {"train": 34, "val": 6, "test": 10}
    assert sum(sizes(hf(builder="csv", data_files=str(tmp_path / "*.csv"), cache_dir=cache)).values()) == 50


def test_text_and_class_label_inputs_are_one_hot(tmp_path: Path) -> None:
    columns = {"color": ["red", "green", "blue", "red"] * 5, "size": [0, 1, 0, 1] * 5, "label": [0, 1] * 10}
    features = Features({"color": Value("string"), "size": ClassLabel(names=["small", "big"]),
                         "label": Value("int64")})
    data = hf(path=saved(Dataset.from_dict(columns, features=features), tmp_path / "d"), val_fraction=0.0,
              test_fraction=0.0)
    x = data.datasets["train"].tensors[0]  # type: ignore[attr-defined]
    assert data.num_features == 5 and data.class_names == ["0", "1"]
    # color: blue, green, red (sorted); size: big, small (by name)
    torch.testing.assert_close(x[:4], torch.tensor([[0., 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1],
                                                    [0, 0, 1, 1, 0]]))


def test_fixed_length_list_columns_are_flattened_features(tmp_path: Path) -> None:
    data = hf(path=saved(Dataset.from_dict(small(30)), tmp_path / "d"), inputs=["emb", "x"])
    shapes = data.data_shapes()
    assert shapes["num_features"] == 5 and "image_shape" not in shapes  # an embedding is not an image
    x = data.datasets["train"].tensors[0]  # type: ignore[attr-defined]
    assert x.shape == (len(x), 5)
    torch.testing.assert_close(x.mean(0), torch.zeros(5), atol=1e-5, rtol=0)


def test_an_image_array_reports_its_shape_and_channels_last_become_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.random((12, 6, 5)).astype("float32")
    gray = Dataset.from_dict({"pixels": pixels.tolist(), "label": [0, 1, 2] * 4},
                             features=Features({"pixels": Array2D((6, 5), "float32"), "label": ClassLabel(num_classes=3)}))
    data = hf(path=saved(gray, tmp_path / "gray"), inputs=["pixels"], standardize=False, val_fraction=0.0,
              test_fraction=0.0)
    assert data.data_shapes()["image_shape"] == [1, 6, 5] and data.num_features == 30
    assert data.class_names == ["0", "1", "2"]
    rgb = rng.random((6, 7, 5, 3)).astype("float32")  # (H, W, C)
    color = Dataset.from_dict({"img": rgb.tolist(), "label": [0, 1] * 3},
                              features=Features({"img": Array3D((7, 5, 3), "float32"), "label": Value("int64")}))
    data = hf(path=saved(color, tmp_path / "rgb"), inputs="img", standardize=False, val_fraction=0.0,
              test_fraction=0.0)
    assert data.image_shape == [3, 7, 5]
    x = data.datasets["train"].tensors[0]  # type: ignore[attr-defined]
    torch.testing.assert_close(x.reshape(-1, 3, 7, 5), torch.from_numpy(rgb.transpose(0, 3, 1, 2)))


def test_a_regression_target_and_missing_values(tmp_path: Path) -> None:
    columns = {"x": [1.0, None, 3.0, 4.0, 5.0, 6.0], "y": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]}
    path = saved(Dataset.from_dict(columns), tmp_path / "d")
    with pytest.raises(ArgumentError, match=r"fill_missing is not set, and columns of the train split miss values: "
                                            r"'x' \(1 of 6\)"):
        hf(path=path, target="y", val_fraction=0.0, test_fraction=0.0)
    data = hf(path=path, target="y", fill_missing="drop", val_fraction=0.0, test_fraction=0.0)
    assert data.data_shapes() == {"num_features": 1, "task": "regression", "target_width": 1}
    assert sizes(data) == {"train": 5}
    assert sizes(hf(path=path, target="y", fill_missing="mean", val_fraction=0.0, test_fraction=0.0)) == {"train": 6}


def test_shapes_given_in_the_config_must_be_the_datas(tmp_path: Path) -> None:
    path = saved(wine_dataset(), tmp_path / "wine")
    with pytest.raises(ArgumentError, match="num_classes is 4 in the config, but the data has 3"):
        hf(path=path, num_classes=4)
    assert hf(path=path, num_features=13, num_classes=3).num_classes == 3


def test_loading_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    from declarative_train.data.hf_load import datasets_module

    module = datasets_module()
    assert os.environ["HF_DATASETS_OFFLINE"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert module.config.HF_HUB_OFFLINE is True


@pytest.fixture
def bad_paths(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "empty").mkdir()
    ragged = Dataset.from_dict({"seq": [[1.0], [1.0, 2.0]] * 5, "label": [0, 1] * 5})
    return {"wine": saved(wine_dataset(), tmp_path / "wine"), "empty": str(tmp_path / "empty"),
            "missing": str(tmp_path / "nowhere"), "dict": saved(DatasetDict({"train": wine_dataset(),
                                                                             "validation": wine_dataset()}),
                                                                tmp_path / "dict"),
            "ragged": saved(ragged, tmp_path / "ragged"), "csv_missing": str(tmp_path / "none*.csv")}


BAD = [
    # (arguments, the argument named, text of the message)
    ({"path": "missing"}, "path", "HFData: path is not a folder:"),
    ({"path": "empty"}, "path", "is not a dataset saved with save_to_disk"),
    ({"path": "wine", "target": "lable"}, "target", "target 'lable' is not a column of the dataset. Did you mean 'label'?"),
    ({"path": "wine", "inputs": ["f1", "f22"]}, "inputs", "'f22' is not a column of the dataset. Did you mean 'f2'?"),
    ({"path": "wine", "inputs": ["f1", "label"]}, "inputs", "holds the target column 'label'"),
    ({"path": "dict", "splits": {"train": "train", "val": "valid"}}, "splits",
     "val: 'valid' is not a split of the dataset (splits: train, validation). Did you mean 'validation'?"),
    ({"path": "dict", "splits": {"train": "train", "dev": "validation"}}, "splits", "has the key 'dev'"),
    ({"path": "ragged", "inputs": "seq"}, "inputs", "holds lists of different lengths"),
    ({"path": "ragged", "target": "seq"}, "target", "not one number, text or class label per row"),
    ({"builder": "csv", "data_files": "csv_missing"}, "data_files", "matches no file"),
    ({"builder": "csv", "data_files": "https://example.com/x.csv"}, "data_files", "is not a local file"),
]


@pytest.mark.parametrize("arguments,argument,text", BAD, ids=lambda v: str(v) if isinstance(v, dict) else None)
def test_bad_input_names_the_argument(bad_paths: dict[str, str], arguments: dict[str, Any], argument: str,
                                      text: str) -> None:
    given = {k: bad_paths.get(v, v) if isinstance(v, str) else v for k, v in arguments.items()}
    with pytest.raises(ArgumentError) as caught:
        hf(**given)
    assert caught.value.argument == argument
    assert str(caught.value).startswith("HFData: ") and text in str(caught.value)


@pytest.mark.parametrize("arguments,argument,text", [
    ({"builder": "mnist", "data_files": "x"}, "builder", "'mnist' is not a local file format"),
    ({"builder": "jsno", "data_files": "x"}, "builder", "Did you mean 'json'?"),
    ({"builder": "csv"}, "data_files", "is not set"),
    ({"path": "d", "data_files": "x"}, "data_files", "but data.builder is not"),
    ({}, "path", "is not set"),
    ({"path": "d", "builder": "csv", "data_files": "x"}, "path", "both set"),
    ({"path": "d", "task": "clasification"}, "task", "Did you mean 'classification'?"),
])
def test_constructor_checks(arguments: dict[str, Any], argument: str, text: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        HFData(target="label", **arguments)
    assert caught.value.argument == argument and text in str(caught.value)


def test_without_datasets_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=r"data: data=hf .* pip install 'declarative_train\[hf\]'"):
        hf(path=str(tmp_path))
