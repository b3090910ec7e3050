"""``dtrain data=image_folder``: a drawn folder of coloured shapes learnt by the CNN, torchvision's
resnet18 and a timm model; bad folders and names as exit 2; the ``shapes_folder`` preset."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from declarative_train import cli
from declarative_train.data.drawn_shapes import write_shapes_folder
from tests.conftest import CLIResult, run_entry_point
from tests.vision_support import INSTALL, vision_test, without_vision

pytest.importorskip("PIL")

#: A small, short run: 32x32 images, no TensorBoard, loaders in this process.
SMALL = ["data=image_folder", "data.image_size=32", "data.batch_size=32", "data.num_workers=0",
         "data.persistent_workers=false", "logger=none"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 drawn 32x32 images, 100 per class (circle, square, triangle)."""
    return write_shapes_folder(tmp_path_factory.mktemp("images") / "shapes", per_class=100)


@pytest.fixture
def dtrain(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           tmp_path: Path) -> Callable[..., tuple[Any, str]]:
    """``dtrain ARGS`` in this process, in ``tmp_path``: (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_entry_point(monkeypatch, capsys, cli.train_main, ["dtrain", *args])


def _results(cwd: Path) -> dict[str, Any]:
    (folder,) = sorted((cwd / "outputs" / "runs").iterdir())
    return json.loads((folder / "results.json").read_text())  # type: ignore[no-any-return]


@vision_test
@pytest.mark.parametrize("model", [
    ["model=cnn", "trainer.max_epochs=15", "optimizer.lr=0.005"],
    ["model=torchvision", "model.net.name=resnet18", "trainer.max_epochs=8", "optimizer.lr=0.003"],
], ids=["cnn", "resnet18"])
def test_a_folder_of_shapes_is_learnt(dtrain: Callable[..., tuple[Any, str]], shapes: Path, tmp_path: Path,
                                      model: list[str]) -> None:
    code, err = dtrain(*SMALL, f"data.root={shapes}", *model)
    assert code == 0, err
    results = _results(tmp_path)
    assert results["status"] == "ok"
    assert results["test"]["test/acc"] >= 0.9, results


@vision_test
def test_a_timm_model_runs_an_epoch(dtrain: Callable[..., tuple[Any, str]], shapes: Path, tmp_path: Path) -> None:
    code, err = dtrain(*SMALL, f"data.root={shapes}", "model=timm", "model.net.name=resnet10t",
                       "trainer.max_epochs=1")
    assert code == 0, err
    assert _results(tmp_path)["epochs"] == 1


def _corrupt(root: Path) -> Path:
    write_shapes_folder(root, per_class=2)
    (root / "circle" / "broken.png").write_bytes(b"not an image")
    return root


def _empty_class(root: Path) -> Path:
    write_shapes_folder(root, per_class=2)
    for file in (root / "square").iterdir():
        file.unlink()
    return root


BAD_INPUT: list[tuple[Callable[[Path], Any], list[str], str]] = [
    (lambda d: d / "missing", [], "data.root: ImageFolderData: root is not a folder:"),
    (lambda d: d.joinpath("empty").mkdir() or d / "empty", [], "data.root: ImageFolderData: root has no images"),
    (lambda d: _empty_class(d / "one_empty"), [], "data.root: ImageFolderData: root class folder "),
    (lambda d: _corrupt(d / "corrupt"), [], "data.root: ImageFolderData: root cannot read the image "),
    (lambda d: write_shapes_folder(d / "ok", per_class=2), ["model=torchvision", "model.net.name=resnet81"],
     "model.net.name: TorchvisionNet: name 'resnet81' is not a torchvision classification model. Did you mean 'resnet18'?"),
    (lambda d: write_shapes_folder(d / "ok", per_class=2), ["model=timm", "model.net.name=resnt10t"],
     "model.net.name: TimmNet: name 'resnt10t' is not a timm model. Did you mean 'resnet10t'?"),
]


@vision_test
@pytest.mark.parametrize("make,args,expected", BAD_INPUT, ids=["root missing", "no images", "empty class",
                                                               "corrupt image", "torchvision name", "timm name"])
def test_bad_input_exits_2_before_training(dtrain: Callable[..., tuple[Any, str]], tmp_path: Path,
                                           make: Callable[[Path], Any], args: list[str], expected: str) -> None:
    root = make(tmp_path)
    code, err = dtrain(*SMALL, f"data.root={root}", *args)
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "outputs" / "runs").exists() or not list((tmp_path / "outputs" / "runs").rglob("*.ckpt"))


@vision_test
def test_the_preset_draws_its_folder_and_trains_offline(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("experiment=shapes_folder", "logger=none")
    assert result.returncode == 0, result.stderr
    results = result.results()
    assert results["test"]["test/acc"] >= 0.9, results
    (folder,) = result.run_dirs()
    assert len(list((folder / "shapes").rglob("*.png"))) == 300
    config = (folder / ".hydra" / "config.yaml").read_text()
    assert "DrawnShapes" in config


@without_vision
def test_without_torchvision_image_folder_is_exit_2_naming_the_extra(dtrain: Callable[..., tuple[Any, str]],
                                                                      shapes: Path) -> None:
    code, err = dtrain(*SMALL, f"data.root={shapes}")
    assert code == 2 and "data: data=image_folder needs torchvision" in err and INSTALL in err, err
    code, err = dtrain("model=torchvision")
    assert code == 2 and "model.net: model=torchvision needs torchvision" in err and INSTALL in err, err
