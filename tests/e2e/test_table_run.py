"""``dtrain data=table``: shapes from the data, bad input as exit 2, accuracy against sklearn, DDP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pa = pytest.importorskip("pyarrow")  # the [tables] extra; the torch-xla venv lacks it
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from declarative_train import cli  # noqa: E402
from declarative_train.data import TableData  # noqa: E402
from declarative_train.data.sklearn_table import write_sklearn_csv  # noqa: E402
from tests.conftest import QUICK, CLIResult, run_entry_point  # noqa: E402

FAST = [*QUICK, "logger=none", "callbacks=none", "metrics=none"]


@pytest.fixture
def dtrain(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           tmp_path: Path) -> Callable[..., tuple[Any, str]]:
    """``dtrain ARGS`` in this process, in ``tmp_path``: (exit code, stderr); stdout in ``printed``."""
    monkeypatch.chdir(tmp_path)

    def _run(*args: str) -> tuple[Any, str]:
        printed.clear()
        code, err = run_entry_point(monkeypatch, _Tee(capsys), cli.train_main, ["dtrain", *args])  # type: ignore[arg-type]
        return code, err

    return _run


#: What the last in-process ``dtrain`` printed on stdout.
printed: list[str] = []


class _Tee:
    """A ``capsys`` whose ``readouterr`` keeps stdout in :data:`printed`."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def readouterr(self) -> Any:
        captured = self.capsys.readouterr()
        printed.append(captured.out)
        return captured


def run_dir(cwd: Path) -> Path:
    (found,) = sorted((cwd / "outputs" / "runs").iterdir())
    return found


@pytest.fixture
def wine(tmp_path: Path) -> Path:
    return write_sklearn_csv("wine", tmp_path / "wine.csv")


def test_a_csv_trains_with_shapes_from_the_data(dtrain: Callable[..., tuple[Any, str]], wine: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from declarative_train.data import table

    reads: list[str] = []
    read = table.read_table
    monkeypatch.setattr(table, "read_table", lambda path, *a, **k: reads.append(path) or read(path, *a, **k))
    code, err = dtrain("data=table", f"data.path={wine}", "data.target=cultivar", *QUICK, "logger=none")
    assert code == 0, err
    assert reads == [str(wine)]  # read once: the build reuses the module that found the shapes
    folder = run_dir(tmp_path)
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "ok" and "test/acc" in results["test"]
    log = (folder / "train.log").read_text()
    assert "target 'cultivar': classification, because the target holds string values" in log
    assert "from the data: data.num_features=16, data.num_classes=3" in log
    import torch

    stored = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["config"]
    assert stored["data"]["num_features"] == 16 and stored["model"]["net"]["out_features"] == 3
    assert stored["data"]["class_names"] == ["barbera", "barolo", "grignolino"]


def test_dry_run_shows_the_values_from_the_data(dtrain: Callable[..., tuple[Any, str]], wine: Path) -> None:
    code, err = dtrain("data=table", f"data.path={wine}", "data.target=cultivar", "dry_run=true")
    assert code == 0, err
    out = "".join(printed)
    assert "num_features=16, num_classes=3, class_names=['barbera', 'barolo', 'grignolino']" in out


def test_a_parquet_regression_table_with_the_regression_model(dtrain: Callable[..., tuple[Any, str]],
                                                               tmp_path: Path) -> None:
    table = pa_csv.read_csv(write_sklearn_csv("diabetes", tmp_path / "d.csv"))
    pq.write_table(table, tmp_path / "d.parquet")
    code, err = dtrain("data=table", f"data.path={tmp_path / 'd.parquet'}", "data.target=progression",
                       "model=mlp_regressor", "metrics=regression", "callbacks.model_checkpoint.monitor=val/loss",
                       *QUICK, "logger=none")
    assert code == 0, err
    assert "test/r2" in json.loads((run_dir(tmp_path) / "results.json").read_text())["test"]


def bad(tmp_path: Path) -> dict[str, Path]:
    files = {"one": tmp_path / "one.csv", "nested": tmp_path / "nested.parquet", "ok": tmp_path / "ok.csv",
             "reg": tmp_path / "reg.csv"}
    pa_csv.write_csv(pa.table({"x": [1.0, 2.0, 3.0], "label": ["a", "a", "a"]}), files["one"])
    pq.write_table(pa.table({"x": [1.0, 2.0], "tags": [[1], [2, 3]], "label": ["a", "b"]}), files["nested"])
    pa_csv.write_csv(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": ["a", "b", "a", "b"]}), files["ok"])
    pa_csv.write_csv(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": [0.5, 1.5, 2.5, 3.5]}), files["reg"])
    return files


BAD_INPUT = [
    # (file, extra arguments, text the message must contain)
    (None, ["data.path=missing.csv", "data.target=label"], "data.path: TableData: path is not a file:"),
    ("ok", ["data.target=lable"], "data.target: TableData: target 'lable' is not a column of ok.csv. "
                                  "Did you mean 'label'?"),
    ("ok", [], "data.target: missing mandatory value"),
    (None, ["data.target=label"], "data.path: TableData: path is not set"),
    ("one", ["data.target=label"], "data.target: TableData: target column 'label' of one.csv holds a single class"),
    ("nested", ["data.target=label"], "data.features: TableData: features holds columns that are neither "
                                      "numbers nor text: 'tags' (list<element: int64>)"),
    ("ok", ["data.target=label", "data.num_classes=3"], "data.num_classes: TableData: num_classes is 3 in the "
                                                        "config, but the data has 2"),
    ("ok", ["data.target=label", "data.features=[x,y]"], "data.features: TableData: features 'y' is not a column"),
    ("reg", ["data.target=label"], "data.task: the target 'label' is a regression target, but the model is a "
                                   "classifier: use model=mlp_regressor metrics=regression"),
]


@pytest.mark.parametrize("name,args,expected", BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_exits_2_with_the_key_path(dtrain: Callable[..., tuple[Any, str]], tmp_path: Path,
                                             name: str | None, args: list[str], expected: str) -> None:
    files = bad(tmp_path)
    path = [f"data.path={files[name]}"] if name else []
    code, err = dtrain("data=table", *path, *args, *FAST)
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("results.json"))


def test_the_preset_trains_offline(dtrain: Callable[..., tuple[Any, str]], tmp_path: Path) -> None:
    code, err = dtrain("experiment=table_wine", "logger=none")
    assert code == 0, err
    folder = run_dir(tmp_path)
    assert (folder / "wine.csv").is_file()
    assert json.loads((folder / "results.json").read_text())["test"]["test/acc"] >= 0.85


def split(path: Path, target: str) -> dict[str, tuple[Any, Any]]:
    """The run's split and encoding of ``path``, as numpy arrays for sklearn."""
    data = TableData(path=str(path), target=target)
    data.setup()
    return {name: (ds.tensors[0].numpy(), ds.tensors[1].numpy()) for name, ds in data.datasets.items()}


@pytest.mark.slow
def test_classification_accuracy_matches_tuned_logistic_regression(run_cli: Callable[..., CLIResult],
                                                                   tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    path = write_sklearn_csv("breast_cancer", tmp_path / "cancer.csv")
    parts = split(path, "diagnosis")

    def fit(c: float) -> Any:
        return LogisticRegression(C=c, max_iter=5000).fit(*parts["train"])

    best = max((0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0), key=lambda c: fit(c).score(*parts["val"]))
    reference = fit(best).score(*parts["test"])
    result = run_cli("data=table", f"data.path={path}", "data.target=diagnosis", "logger=none")
    assert result.returncode == 0, result.stderr
    accuracy = result.results()["test"]["test/acc"]
    assert accuracy >= reference - 0.03, f"test/acc {accuracy:.4f} vs LogisticRegression(C={best}) {reference:.4f}"


@pytest.mark.slow
def test_regression_r2_matches_tuned_ridge(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    path = write_sklearn_csv("diabetes", tmp_path / "diabetes.csv")
    parts = split(path, "progression")

    def r2(alpha: float, part: str) -> float:
        return float(r2_score(parts[part][1], Ridge(alpha=alpha).fit(*parts["train"]).predict(parts[part][0])))

    best = max((0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0), key=lambda a: r2(a, "val"))
    reference = r2(best, "test")
    result = run_cli("data=table", f"data.path={path}", "data.target=progression", "model=linear_regressor",
                     "metrics=regression", "callbacks.model_checkpoint.monitor=val/loss", "trainer.max_epochs=100",
                     "optimizer.lr=0.01", "logger=none")
    assert result.returncode == 0, result.stderr
    value = result.results()["test"]["test/r2"]
    assert value >= reference - 0.05, f"test/r2 {value:.4f} vs Ridge(alpha={best}) {reference:.4f}"


@pytest.mark.ddp
def test_ddp_workers_use_the_shapes_resolved_before_launch(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("experiment=table_wine", "accelerator=cpu", "accelerator.devices=2", "accelerator.strategy=ddp",
                     "logger=none", "trainer.max_epochs=3", timeout=240)
    assert result.returncode == 0, result.stderr
    (folder,) = result.run_dirs()
    resolved = yaml.safe_load((folder / "resolved_config.yaml").read_text())
    assert resolved["data"]["num_features"] == 16 and resolved["data"]["num_classes"] == 3
    assert result.results()["status"] == "ok"
    log = (folder / "train.log").read_text()
    assert "worker rank 1 of 2" in log and "target 'cultivar': classification" in log
