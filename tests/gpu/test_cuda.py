"""CUDA path: device selection, mixed precision with GradScaler/autocast, pinned non-blocking
copies, torch.compile. Marked ``gpu``; skipped with a reason where CUDA is absent."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from declarative_train import Classification, Executor
from declarative_train.accelerators import CUDAAccelerator
from declarative_train.accelerators.cuda import parse_cuda_devices
from declarative_train.data import Digits
from declarative_train.models import MLP
from tests.conftest import cli_env

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]


def _executor(precision: str, **kwargs: object) -> Executor:
    torch.manual_seed(0)
    task = Classification(MLP(64, [128, 64], 10), torch.nn.CrossEntropyLoss())
    return Executor(task=task, data=Digits(batch_size=64, pin_memory=True), optimizer=partial(torch.optim.Adam, lr=3e-3),
                    accelerator=CUDAAccelerator(torch.device("cuda", 0)), precision=precision, max_epochs=8, **kwargs)


def test_device_selection() -> None:
    count = torch.cuda.device_count()
    assert parse_cuda_devices(-1) == list(range(count))
    assert parse_cuda_devices(1) == [0]
    assert parse_cuda_devices([count - 1]) == [count - 1]
    with pytest.raises(ValueError, match="this machine has"):
        parse_cuda_devices([count])


@pytest.mark.parametrize("precision", ["32", "16-mixed", "bf16-mixed"])
def test_training_on_cuda_in_each_precision(precision: str) -> None:
    ex = _executor(precision)
    ex.fit()
    results = ex.test(ckpt_path=None)
    assert next(ex.task.parameters()).device.type == "cuda"
    assert results["test/loss"] < 0.3
    if precision == "16-mixed":
        assert ex.precision.scaler is not None and ex.precision.scaler.get_scale() > 0


def test_pinned_batches_move_non_blocking() -> None:
    acc = CUDAAccelerator(torch.device("cuda", 0))
    batch = (torch.ones(4, 3).pin_memory(), {"y": torch.zeros(4).pin_memory()})
    moved = acc.to_device(batch)
    torch.cuda.synchronize()
    assert moved[0].is_cuda and moved[1]["y"].is_cuda


def test_torch_compile_trains() -> None:
    ex = _executor("bf16-mixed", compile=True)
    ex.fit()
    assert ex.test(ckpt_path=None)["test/loss"] < 0.3


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_dtrain_default_experiment_on_gpu(tmp_path: Path, precision: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "declarative_train", "accelerator=gpu", f"precision={precision}",
                           "logger=none"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test"]["test/acc"] >= 0.95
