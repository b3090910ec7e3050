"""``dtrain-predict``: a trained table run's checkpoint predicts on new files, in order, as its model does."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate

pa = pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from declarative_train import cli  # noqa: E402
from declarative_train.config.overrides import stored_section_overrides  # noqa: E402
from declarative_train.data.sklearn_table import write_sklearn_csv  # noqa: E402
from tests.conftest import QUICK, run_entry_point  # noqa: E402

FAST = [*QUICK, "trainer.limit_train_batches=2", "logger=none"]


class _NoCapture:
    def readouterr(self) -> Any:
        class Out:
            out = err = ""
        return Out()


def _train(folder: Path, *args: str) -> Path:
    """``dtrain ARGS`` in ``folder`` (in this process); its ``last.ckpt``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        code, _ = run_entry_point(mp, _NoCapture(), cli.train_main, ["dtrain", *args])  # type: ignore[arg-type]
    assert code == 0
    (ckpt,) = folder.glob("outputs/runs/*/checkpoints/last.ckpt")
    return ckpt


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A tiny wine classifier trained on wine.csv, and files to predict on."""
    folder = tmp_path_factory.mktemp("wine")
    train = write_sklearn_csv("wine", folder / "wine.csv")
    table = pa_csv.read_csv(train)
    order = list(range(table.num_rows))[::-3]  # not the file's order
    new = table.drop(["cultivar"]).take(order)
    new = new.append_column("sample_id", pa.array([f"s{i}" for i in order]))
    pa_csv.write_csv(new, folder / "new.csv")
    pa_csv.write_csv(new.drop(["hue"]), folder / "no_hue.csv")
    pa_csv.write_csv(new.append_column("extra", pa.array([1.0] * new.num_rows)), folder / "extra.csv")
    ckpt = _train(folder, "data=table", f"data.path={train}", "data.target=cultivar", *FAST)
    yield {"folder": folder, "train": train, "new": folder / "new.csv", "ckpt": ckpt, "order": order}  # type: ignore[dict-item]


@pytest.fixture
def dtrain_predict(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                   tmp_path: Path) -> Callable[..., tuple[Any, str]]:
    """``dtrain-predict ARGS`` in this process, in ``tmp_path``: (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_entry_point(monkeypatch, capsys, cli.predict_main, ["dtrain-predict", *args])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _reference(ckpt: Path, inputs_of: Callable[[Any], torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """The checkpoint's model, rebuilt from its stored config with its weights, on ``inputs_of(data)``."""
    saved = torch.load(ckpt, weights_only=True)
    data = instantiate(saved["config"]["data"])
    data.setup()
    task = instantiate(saved["config"]["model"])
    task.load_state_dict(saved["state_dict"])
    with torch.no_grad():
        return data, task.eval()(inputs_of(data))


def test_a_new_file_without_the_target_is_predicted_in_order_as_the_model_does(
        wine_run: dict[str, Any], dtrain_predict: Callable[..., tuple[Any, str]], tmp_path: Path) -> None:
    out = tmp_path / "preds" / "wine.csv"
    code, err = dtrain_predict(f"ckpt_path={wine_run['ckpt']}", f"data.predict_path={wine_run['new']}",
                               "data.id_column=sample_id", f"output={out}")
    assert code == 0, err
    rows = _read_csv(out)
    assert list(rows[0]) == ["sample_id", "prediction", "prob_barbera", "prob_barolo", "prob_grignolino"]
    assert [r["sample_id"] for r in rows] == [f"s{i}" for i in wine_run["order"]]
    probs = torch.tensor([[float(r[f"prob_{c}"]) for c in ("barbera", "barolo", "grignolino")] for r in rows])
    assert torch.allclose(probs.sum(1), torch.ones(len(rows)), atol=1e-9)

    # The same rows as the training file encodes them (train-split encodings), through the model.
    data, logits = _reference(wine_run["ckpt"], lambda d: torch.cat([d.datasets[s].tensors[0] for s in ("train", "val", "test")]))
    file_rows = torch.cat([torch.tensor(d) for d in (data.row_ids(s)[1] for s in ("train", "val", "test"))])
    by_row = dict(zip(file_rows.tolist(), logits))
    expected = torch.stack([by_row[i] for i in wine_run["order"]])
    assert [r["prediction"] for r in rows] == [data.class_names[i] for i in expected.argmax(1).tolist()]
    assert torch.allclose(probs, torch.softmax(expected.double(), 1).to(probs.dtype), atol=1e-6)
    assert not list(out.parent.glob(".*.tmp"))


def test_without_a_predict_file_the_test_split_is_predicted_with_file_row_numbers(
        wine_run: dict[str, Any], dtrain_predict: Callable[..., tuple[Any, str]], tmp_path: Path) -> None:
    code, err = dtrain_predict(f"ckpt_path={wine_run['ckpt']}", "output=test.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    data, logits = _reference(wine_run["ckpt"], lambda d: d.datasets["test"].tensors[0])
    assert [r["row"] for r in rows] == data.row_ids("test")[1]
    assert [r["prediction"] for r in rows] == [data.class_names[i] for i in logits.argmax(1).tolist()]


def test_parquet_output(wine_run: dict[str, Any], dtrain_predict: Callable[..., tuple[Any, str]], tmp_path: Path) -> None:
    code, err = dtrain_predict(f"ckpt_path={wine_run['ckpt']}", f"data.predict_path={wine_run['new']}",
                               "data.id_column=sample_id", "output=p.parquet")
    assert code == 0, err
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.column("sample_id").to_pylist() == [f"s{i}" for i in wine_run["order"]]


@pytest.mark.parametrize(("file", "args", "message"), [
    ("no_hue.csv", [], "data.predict_path: TableData: predict_path no_hue.csv lacks the feature columns ['hue']"),
    ("extra.csv", ["data.id_column=sample_id"], "extra.csv has columns the training files lack: ['extra']"),
    ("new.csv", ["data.id_column=sample"], "data.id_column: TableData: id_column 'sample' is not a column of new.csv. "
                                           "Did you mean 'sample_id'?"),
    ("new.csv", ["data.id_column=sample_id", "output=new.csv/preds.csv"], "output: cannot write 'new.csv/preds.csv'"),
    ("new.csv", ["data.id_column=sample_id", "output=preds.txt"], "output: 'preds.txt': the extension '.txt'"),
])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(
        wine_run: dict[str, Any], dtrain_predict: Callable[..., tuple[Any, str]], tmp_path: Path,
        file: str, args: list[str], message: str) -> None:
    (tmp_path / "new.csv").write_text("a file, not a folder")
    code, err = dtrain_predict(f"ckpt_path={wine_run['ckpt']}", f"data.predict_path={wine_run['folder'] / file}", *args)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.rglob("predictions.csv")) and not list(tmp_path.rglob("*.tmp"))


def test_a_missing_checkpoint_exits_1(dtrain_predict: Callable[..., tuple[Any, str]], tmp_path: Path) -> None:
    code, err = dtrain_predict(f"ckpt_path={tmp_path / 'nope.ckpt'}")
    assert code == 1 and "nope.ckpt" in err


def test_regression_predictions_are_in_the_target_units(
        dtrain_predict: Callable[..., tuple[Any, str]], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    folder = tmp_path_factory.mktemp("diabetes")
    train = write_sklearn_csv("diabetes", folder / "d.csv")
    table = pa_csv.read_csv(train)
    pa_csv.write_csv(table.drop(["progression"]), folder / "new.csv")
    ckpt = _train(folder, "data=table", f"data.path={train}", "data.target=progression", "model=mlp_regressor",
                  "metrics=regression", "callbacks.model_checkpoint.monitor=val/loss", *FAST)
    code, err = dtrain_predict(f"ckpt_path={ckpt}", f"data.predict_path={folder / 'new.csv'}")
    assert code == 0, err
    (out,) = tmp_path.glob("outputs/runs/*/predictions.csv")
    predicted = torch.tensor([float(r["prediction"]) for r in _read_csv(out)], dtype=torch.float64)
    data, outputs = _reference(ckpt, lambda d: torch.cat([d.datasets[s].tensors[0] for s in ("train", "val", "test")]))
    rows = torch.cat([torch.tensor(data.row_ids(s)[1]) for s in ("train", "val", "test")])
    standardised = outputs.squeeze(-1).double()[rows.argsort()]
    assert data.target_std > 10  # diabetes progression: tens to hundreds
    assert torch.allclose(predicted, standardised * data.target_std + data.target_mean, atol=1e-3)
    target = torch.tensor(table.column("progression").to_pylist(), dtype=torch.float64)
    assert target.min() - target.std() < predicted.mean() < target.max() + target.std()


def test_the_default_digits_run_predicts_its_test_split(
        dtrain_predict: Callable[..., tuple[Any, str]], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    ckpt = _train(tmp_path_factory.mktemp("digits"), *FAST)
    code, err = dtrain_predict(f"ckpt_path={ckpt}")
    assert code == 0, err
    (out,) = tmp_path.glob("outputs/runs/*/predictions.csv")
    rows = _read_csv(out)
    assert list(rows[0]) == ["row", "prediction", *(f"prob_{i}" for i in range(10))]
    assert [int(r["row"]) for r in rows] == list(range(270))  # 15% of 1797 digits
    assert {r["prediction"] for r in rows} <= {str(i) for i in range(10)}


def test_data_keys_reach_the_stored_data_section() -> None:
    assert stored_section_overrides(["ckpt_path=x", "data.predict_path=f.csv", "output=o.csv"]) == \
        ["ckpt_path=x", "++data.predict_path=f.csv", "output=o.csv"]
    assert stored_section_overrides(["data=table", "data.path=f.csv"]) == ["data=table", "data.path=f.csv"]
    assert stored_section_overrides(["+data.x=1", "~data.y"]) == ["+data.x=1", "~data.y"]


def test_unseen_categories_are_all_zeros_and_missing_values_need_a_fill(tmp_path: Path) -> None:
    from declarative_train.data import TableData
    from declarative_train.errors import ArgumentError

    pa_csv.write_csv(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "kind": ["a", "b", "a", "b"], "y": ["p", "q", "p", "q"]}),
                     tmp_path / "train.csv")
    pa_csv.write_csv(pa.table({"kind": ["c", "a"], "x": [1.0, None]}), tmp_path / "new.csv")  # other column order
    data = TableData(path=str(tmp_path / "train.csv"), target="y", predict_path=str(tmp_path / "new.csv"),
                     val_fraction=0.0, test_fraction=0.25, fill_missing="mean")
    data.setup()
    (inputs,) = data.datasets["predict"].tensors
    assert inputs[0, 1:].tolist() == [0.0, 0.0] and inputs[1, 1:].tolist() == [1.0, 0.0]  # x, kind=a, kind=b
    assert data.row_ids("predict") == ("row", [0, 1])
    with pytest.raises(ArgumentError, match=r"new.csv misses values in 'x' \(1 of 2\)"):
        TableData(path=str(tmp_path / "train.csv"), target="y", predict_path=str(tmp_path / "new.csv"),
                  val_fraction=0.0, test_fraction=0.25).setup()
