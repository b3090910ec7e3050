"""``dtrain-export``: each format reloads in its own runtime and reproduces eager PyTorch; bad input fails cleanly.

Checkpoints come from real short ``dtrain`` runs; exports run the real entry point in process
(and once as a real ``dtrain-export`` command); every file is read back here with the runtime a
user would use (onnxruntime, ``torch.export.load``, ``torch.jit.load``, safetensors), independently
of the command's own check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from declarative_train import cli
from declarative_train.checkpoint import file as checkpoint_file
from declarative_train.data import Digits
from declarative_train.export import FORMATS, Format
from declarative_train.models import CNN, MLP
from declarative_train.tasks import Classification
from tests.conftest import cli_env, run_entry_point
from tests.export.nets import CumMaxNet

# The export extra (make install has it; the torch-xla venv of the xla tier does not).
onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="the export extra is not installed")
safe_open = pytest.importorskip("safetensors", reason="the export extra is not installed").safe_open

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "test=false",
         "logger=none", "~callbacks.progress_bar"]
NETS = {"mlp": lambda: MLP(64, [128, 64], 10, dropout=0.1),
        "cnn": lambda: CNN([1, 8, 8], [32, 64], 10, pool="avg", head_size=2, dropout=0.1)}


def _dtrain(cwd: Path, *args: str, command: str = "dtrain") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / command), *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``last.ckpt`` of a short real run per model."""
    folder = tmp_path_factory.mktemp("export")
    paths = {}
    for model in NETS:
        proc = _dtrain(folder, f"model={model}", *SHORT, f"hydra.run.dir={folder / model}")
        assert proc.returncode == 0, proc.stderr
        paths[model] = folder / model / "checkpoints" / "last.ckpt"
    return paths


def _export(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], run_dir: Path,
            *args: str) -> tuple[Any, str]:
    """``dtrain-export ARGS`` in this process (the same entry point); its exit code and stderr."""
    return run_entry_point(monkeypatch, capsys, cli.export_main,
                           ["dtrain-export", *args, f"hydra.run.dir={run_dir}"])


def _eager(model: str, ckpt: Path) -> Classification:
    task = Classification(net=NETS[model](), loss=torch.nn.CrossEntropyLoss())
    task.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])
    return task.eval()


def _digits(rows: int) -> torch.Tensor:
    data = Digits(batch_size=64)
    data.setup()
    return data.datasets["test"].tensors[0][:rows]


def _reloaded(fmt: str, path: Path, model: str) -> Any:
    """The exported file as a function of a batch, loaded the way a user of that runtime would."""
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["inputs"]
        return lambda x: torch.from_numpy(session.run(["outputs"], {"inputs": x.numpy()})[0])
    if fmt == "exported_program":
        return torch.export.load(str(path)).module()
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    task = Classification(net=NETS[model](), loss=torch.nn.CrossEntropyLoss())
    task.load_state_dict(safetensors_torch.load_file(str(path)))
    return task.eval()


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("model", list(NETS))
def test_every_format_reloads_in_its_runtime_and_matches_eager(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], model: str, fmt: str,
) -> None:
    output = tmp_path / "out" / f"model{FORMATS[fmt].extension}"
    code, err = _export(monkeypatch, capsys, tmp_path / "run", f"ckpt_path={checkpoints[model]}",
                        f"format={fmt}", f"output={output}")
    assert code == 0, err
    batch = _digits(7)  # neither the traced batch size (2) nor the command's check size (3)
    with torch.no_grad():
        expected = _eager(model, checkpoints[model])(batch)
        produced = _reloaded(fmt, output, model)(batch)
    assert produced.shape == (7, 10)
    assert torch.allclose(produced, expected, rtol=0, atol=1e-5)
    described = json.loads((output.parent / "export.json").read_text())
    assert described["format"] == fmt and Path(described["file"]) == output
    assert described["inputs"] == [{"name": "inputs", "shape": ["batch", 64], "dtype": "float32"}]
    assert described["outputs"] == [{"name": "outputs", "shape": ["batch", 10]}]
    assert described["class_names"] == [str(i) for i in range(10)]
    assert 0 <= described["max_abs_diff"] <= described["tolerance"] == 1e-5
    assert described["versions"]["torch"] == torch.__version__
    assert sorted(p.name for p in output.parent.iterdir()) == sorted([output.name, "export.json"])  # no temp file left
    if fmt == "safetensors":
        with safe_open(str(output), "pt") as handle:
            stored = json.loads(handle.metadata()["config"])
        assert stored["model"]["net"]["_target_"].endswith(model.upper())


def test_the_command_writes_into_its_run_folder_by_default(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _dtrain(tmp_path, f"ckpt_path={checkpoints['mlp']}", f"hydra.run.dir={run_dir}", command="dtrain-export")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {run_dir / 'model.onnx'} (onnx)" in proc.stdout
    assert "Skipping torchvision" not in proc.stderr and "FutureWarning" not in proc.stderr  # the exporters kept quiet
    session = onnxruntime.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"inputs": np.zeros((1, 64), dtype=np.float32)})[0]
    assert out.shape == (1, 10)


def test_unknown_format_and_missing_checkpoint_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _export(monkeypatch, capsys, tmp_path / "run", "format=onx")
    assert code == 2
    assert "ckpt_path: missing mandatory value" in err
    assert "format: 'onx' is not one of onnx, exported_program, torchscript, safetensors. Did you mean 'onnx'?" in err


def test_a_missing_optional_package_names_the_extra(checkpoints: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(FORMATS, "onnx", Format("onnx", ".onnx", ("onnxruntime_not_installed",), "export", "ONNX"))
    code, err = _export(monkeypatch, capsys, tmp_path / "run", f"ckpt_path={checkpoints['mlp']}")
    assert code == 2
    assert "format: onnx needs onnxruntime_not_installed: pip install 'declarative_train[export]'" in err


def test_a_checkpoint_without_a_stored_config_needs_the_model_named(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    saved = torch.load(checkpoints["cnn"], weights_only=True)
    del saved["config"]
    bare = tmp_path / "bare.ckpt"
    checkpoint_file.write(saved, [bare])
    code, err = _export(monkeypatch, capsys, tmp_path / "run", f"ckpt_path={bare}", "format=torchscript")
    assert code == 2
    assert (f"model: the checkpoint {bare} has no stored config: name the model and its data on the command "
            "line (model=... data=...)") in err
    code, err = _export(monkeypatch, capsys, tmp_path / "run2", f"ckpt_path={bare}", "format=torchscript", "model=cnn")
    assert code == 0, err


def test_an_operator_onnx_cannot_convert_names_it_and_its_module_and_leaves_no_file(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    saved = torch.load(checkpoints["mlp"], weights_only=True)
    saved["config"]["model"]["net"] = {"_target_": "tests.export.nets.CumMaxNet", "in_features": 64, "out_features": 10}
    saved["state_dict"] = Classification(CumMaxNet(64, 10), torch.nn.CrossEntropyLoss()).state_dict()
    ckpt = tmp_path / "cummax.ckpt"
    checkpoint_file.write(saved, [ckpt])
    out = tmp_path / "out"
    code, err = _export(monkeypatch, capsys, tmp_path / "run", f"ckpt_path={ckpt}", "user_packages=[tests]",
                        f"output={out / 'model.onnx'}")
    assert code == 1
    assert "the ONNX exporter cannot convert aten.cummax in module net (CumMaxNet) of Classification (CumMaxNet)" in err
    assert "No ONNX function found" in err
    assert list(out.iterdir()) == []  # no partial file
    code, err = _export(monkeypatch, capsys, tmp_path / "run2", f"ckpt_path={ckpt}", "user_packages=[tests]",
                        "format=exported_program", f"output={out / 'model.pt2'}")
    assert code == 0, err


def test_an_unwritable_output_fails_before_anything_is_written(
    checkpoints: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, err = _export(monkeypatch, capsys, tmp_path / "run", f"ckpt_path={checkpoints['mlp']}",
                        f"output={blocker / 'model.onnx'}")
    assert code == 1
    assert f"error: cannot write {blocker / 'model.onnx'}" in err
    assert blocker.read_text() == "not a folder"


def test_a_bf16_true_checkpoint_exports_in_float32_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    proc = _dtrain(tmp_path, "precision=bf16-true", *SHORT, f"hydra.run.dir={tmp_path / 'bf16'}")
    assert proc.returncode == 0, proc.stderr
    ckpt = tmp_path / "bf16" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["state_dict"]["net.0.weight"].dtype == torch.bfloat16
    for dtype, out in (("float32", tmp_path / "f32"), ("bfloat16", tmp_path / "bf16out")):
        code, err = _export(monkeypatch, capsys, tmp_path / f"run-{dtype}", f"ckpt_path={ckpt}",
                            "format=exported_program", f"dtype={dtype}", f"output={out / 'model.pt2'}")
        assert code == 0, err
        described = json.loads((out / "export.json").read_text())
        assert described["inputs"][0]["dtype"] == dtype == described["dtype"]
        assert described["tolerance"] == (1e-5 if dtype == "float32" else 1e-2)
        program = torch.export.load(str(out / "model.pt2")).module()
        assert program(_digits(4).to(getattr(torch, dtype))).dtype == getattr(torch, dtype)
