"""``dtrain data=hf``: a saved dataset trains from the config alone; bad input is exit 2 with the key path."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("datasets")  # the [hf] extra
from datasets import Array2D, ClassLabel, Dataset, DatasetDict, Features, Value  # noqa: E402

from declarative_train import cli  # noqa: E402
from tests.conftest import QUICK, run_entry_point  # noqa: E402

FAST = [*QUICK, "logger=none", "callbacks=none", "metrics=none"]
WINE_INPUTS = [f"f{i}" for i in range(13)]


class _Keep:
    """A ``capsys`` whose ``readouterr`` keeps stdout in ``out``."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys, self.out = capsys, ""

    def readouterr(self) -> Any:
        captured = self.capsys.readouterr()
        self.out = captured.out
        return captured


@pytest.fixture
def dtrain(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           tmp_path: Path) -> Callable[..., tuple[Any, str, str]]:
    """``dtrain ARGS`` in this process, in ``tmp_path``: (exit code, stderr, stdout)."""
    monkeypatch.chdir(tmp_path)
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):  # set by loading; restored after the test
        monkeypatch.setenv(name, os.environ.get(name, "0"))

    def _run(*args: str) -> tuple[Any, str, str]:
        keep = _Keep(capsys)
        code, err = run_entry_point(monkeypatch, keep, cli.train_main, ["dtrain", *args])  # type: ignore[arg-type]
        return code, err, keep.out

    return _run


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny datasets written with ``save_to_disk``: wine (one split), digits (train/test), a DatasetDict."""
    from sklearn.datasets import load_digits, load_wine

    root = tmp_path_factory.mktemp("hf")
    wine = load_wine()
    columns: dict[str, Any] = {name: wine.data[:, i].tolist() for i, name in enumerate(WINE_INPUTS)}
    columns["label"] = wine.target.tolist()
    features = Features({**{name: Value("float64") for name in WINE_INPUTS},
                         "label": ClassLabel(names=["barolo", "grignolino", "barbera"])})
    Dataset.from_dict(columns, features=features).save_to_disk(str(root / "wine"))
    digits = load_digits()
    images = Dataset.from_dict({"pixels": digits.images.astype("float32").tolist(), "label": digits.target.tolist()},
                               features=Features({"pixels": Array2D((8, 8), "float32"),
                                                  "label": ClassLabel(num_classes=10)}))
    parts = images.train_test_split(test_size=0.2, seed=0)
    DatasetDict({"train": parts["train"], "test": parts["test"]}).save_to_disk(str(root / "digits"))
    (root / "empty").mkdir()
    return {"wine": root / "wine", "digits": root / "digits", "empty": root / "empty"}


def run_dir(cwd: Path) -> Path:
    (found,) = sorted((cwd / "outputs" / "runs").iterdir())
    return found


def test_a_saved_dataset_trains_and_tests_from_the_config_alone(dtrain: Callable[..., tuple[Any, str, str]],
                                                                saved: dict[str, Path], tmp_path: Path) -> None:
    code, err, _ = dtrain("data=hf", f"data.path={saved['wine']}", f"data.inputs=[{','.join(WINE_INPUTS)}]",
                          "data.target=label", "data.batch_size=32", "trainer.max_epochs=30", "logger=none")
    assert code == 0, err
    folder = run_dir(tmp_path)
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "ok" and results["test"]["test/acc"] >= 0.9, results
    log = (folder / "train.log").read_text()
    assert "target 'label': classification, because the target is a ClassLabel" in log
    assert "from the data: data.num_features=13, data.num_classes=3" in log
    import torch

    stored = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["config"]
    assert stored["data"]["class_names"] == ["barolo", "grignolino", "barbera"]
    assert stored["model"]["net"]["in_features"] == 13 and stored["model"]["net"]["out_features"] == 3


def test_an_image_array_column_fills_the_cnns_input_shape(dtrain: Callable[..., tuple[Any, str, str]],
                                                          saved: dict[str, Path]) -> None:
    code, err, out = dtrain("data=hf", f"data.path={saved['digits']}", "data.inputs=pixels", "data.target=label",
                            "model=cnn", "dry_run=true")
    assert code == 0, err
    assert "num_features=64, num_classes=10" in out and "image_shape=[1, 8, 8]" in out


BAD_INPUT = [
    # (extra arguments, with {wine}/{empty}/{digits} for the saved folders; text the message must contain)
    (["data.path={wine}/nowhere"], "data.path: HFData: path is not a folder:"),
    (["data.path={empty}"], "data.path: HFData: path '"),
    (["data.path={wine}", "data.inputs=[f1,f77]"], "data.inputs: HFData: inputs 'f77' is not a column of the "
                                                   "dataset. Did you mean 'f7'?"),
    (["data.path={wine}", "data.target=lable"], "data.target: HFData: target 'lable' is not a column of the "
                                                "dataset. Did you mean 'label'?"),
    (["data.path={digits}", "data.splits={{train:train,test:tset}}"], "data.splits: HFData: splits test: 'tset' is "
                                                                      "not a split of the dataset (splits: train, "
                                                                      "test). Did you mean 'test'?"),
    (["data.builder=mnist", "data.data_files=x.csv"], "data.builder: HFData: builder 'mnist' is not a local file format"),
    (["data.path={wine}", "data.num_classes=4"], "data.num_classes: HFData: num_classes is 4 in the config, but the "
                                                 "data has 3"),
]


@pytest.mark.parametrize("args,expected", BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_exits_2_with_the_key_path(dtrain: Callable[..., tuple[Any, str, str]], saved: dict[str, Path],
                                             tmp_path: Path, args: list[str], expected: str) -> None:
    given = [arg.format(**saved) for arg in args]
    code, err, _ = dtrain("data=hf", "data.target=label", *given, *FAST)
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
    assert not list((tmp_path / "outputs").rglob("results.json"))


def test_without_datasets_installed_the_message_names_the_extra(dtrain: Callable[..., tuple[Any, str, str]],
                                                                saved: dict[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    code, err, _ = dtrain("data=hf", f"data.path={saved['wine']}", "data.target=label", *FAST)
    assert code == 2, err
    assert "pip install 'declarative_train[hf]'" in err and "Traceback" not in err


def test_the_preset_saves_digits_and_trains_the_cnn_offline(dtrain: Callable[..., tuple[Any, str, str]],
                                                            tmp_path: Path) -> None:
    code, err, _ = dtrain("experiment=hf_digits", "logger=none")
    assert code == 0, err
    folder = run_dir(tmp_path)
    assert (folder / "digits_hf" / "dataset_dict.json").is_file()
    assert "data.image_shape=[1, 8, 8]" in (folder / "train.log").read_text()
    assert json.loads((folder / "results.json").read_text())["test"]["test/acc"] >= 0.95
