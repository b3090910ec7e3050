"""XLAAccelerator's protocol methods, autocast and checkpoint saving on PJRT_DEVICE=CPU."""

from __future__ import annotations

import dataclasses
import os
from collections import namedtuple

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from declarative_train.accelerators.xla import XLAAccelerator, state_dict_to_cpu
from declarative_train.checkpoint import CheckpointWriter
from declarative_train.checkpoint import file as ckpt_file

pytestmark = pytest.mark.xla

Pair = namedtuple("Pair", ["a", "b"])


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    meta: str


def test_available_and_described(accelerator: XLAAccelerator) -> None:
    assert XLAAccelerator.is_available()
    assert XLAAccelerator.missing_reason() == ""
    assert accelerator.device.type == "xla"
    assert accelerator.describe().startswith("tpu (xla:0: CPU")
    assert accelerator.loader_moves_data


def test_to_device_moves_nested_batches(accelerator: XLAAccelerator) -> None:
    batch = {
        "x": torch.ones(2, 3),
        "pair": Pair(torch.zeros(1), [torch.arange(3), "keep"]),
        "data": Batch(torch.ones(4), "name"),
        "n": 7,
    }
    moved = accelerator.to_device(batch)
    assert moved["x"].device.type == "xla"
    assert isinstance(moved["pair"], Pair)
    assert moved["pair"].a.device.type == "xla"
    assert moved["pair"].b[0].device.type == "xla" and moved["pair"].b[1] == "keep"
    assert isinstance(moved["data"], Batch) and moved["data"].x.device.type == "xla"
    assert moved["data"].meta == "name" and moved["n"] == 7
    torch.testing.assert_close(moved["pair"].b[0].cpu(), torch.arange(3))


def test_wrap_loader_yields_device_batches(accelerator: XLAAccelerator) -> None:
    data = TensorDataset(torch.randn(10, 3), torch.arange(10))
    loader = DataLoader(data, batch_size=4, drop_last=True)
    batches = list(accelerator.wrap_loader(loader))
    assert len(batches) == 2
    for x, y in batches:
        assert x.device.type == "xla" and y.device.type == "xla"
        assert x.shape == (4, 3)


def test_bf16_autocast(accelerator: XLAAccelerator) -> None:
    model = accelerator.prepare_model(torch.nn.Linear(8, 4))
    x = accelerator.to_device(torch.randn(16, 8))
    with torch.autocast(XLAAccelerator.autocast_device_type, dtype=torch.bfloat16):
        out = model(x)
        loss = out.float().pow(2).mean()
    assert out.dtype == torch.bfloat16
    loss.backward()
    accelerator.mark_step()
    assert model.weight.grad is not None and model.weight.grad.dtype == torch.float32
    assert torch.isfinite(model.weight.grad.cpu()).all()


def test_sealed_checkpoint_loads_on_cpu_and_back_on_xla(accelerator: XLAAccelerator, tmp_path) -> None:
    torch.manual_seed(0)
    model = accelerator.prepare_model(torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU()))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(accelerator.to_device(torch.randn(4, 5))).sum().backward()
    accelerator.optimizer_step(optimizer)
    accelerator.mark_step()

    path = tmp_path / "ckpt" / "last.ckpt"
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 1}
    writer = CheckpointWriter()  # the same sealed path as on every device, after the CPU transfer
    writer.write(accelerator.checkpoint_state(state), [path], background=True)
    writer.close()
    assert os.listdir(path.parent) == ["last.ckpt"]  # no temp file left behind

    ckpt_file.verify(path)  # sealed: every byte covered by the integrity footer
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert loaded["step"] == 1
    for key, value in model.state_dict().items():
        assert loaded["model"][key].device.type == "cpu"
        torch.testing.assert_close(loaded["model"][key], value.cpu())
    cpu_model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU())
    cpu_model.load_state_dict(loaded["model"])

    back = accelerator.prepare_model(torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU()))
    back.load_state_dict(loaded["model"])
    back_optimizer = torch.optim.Adam(back.parameters(), lr=0.01)
    back_optimizer.load_state_dict(loaded["optimizer"])
    for (key, a), b in zip(back.state_dict().items(), model.state_dict().values()):
        assert a.device.type == "xla", key
        torch.testing.assert_close(a.cpu(), b.cpu())
    exp_avg = back_optimizer.state_dict()["state"][0]["exp_avg"]
    torch.testing.assert_close(exp_avg.cpu(), loaded["optimizer"]["state"][0]["exp_avg"])


def test_state_dict_to_cpu_keeps_structure(accelerator: XLAAccelerator) -> None:
    obj = {"a": [accelerator.to_device(torch.ones(2)), (torch.zeros(1), 3)], "p": Pair(1, None)}
    cpu = state_dict_to_cpu(obj)
    assert cpu["a"][0].device.type == "cpu" and isinstance(cpu["a"][1], tuple)
    assert cpu["a"][1][1] == 3 and cpu["p"] == Pair(1, None)


def test_warn_if_recompiling(tmp_path) -> None:
    acc = XLAAccelerator(recompile_warmup_steps=2)
    acc.setup()
    model = acc.prepare_model(torch.nn.Linear(3, 1))

    def step(batch_size: int) -> None:
        model(acc.to_device(torch.randn(batch_size, 3))).sum().backward()
        acc.mark_step()

    warnings = []
    for i in range(6):
        step(8)  # fixed shape: compiles once, then reuses the graph
        warnings.append(acc.warn_if_recompiling(i))
    assert warnings == [None] * 6
    step(5)  # a new shape compiles a new graph
    assert acc.warn_if_recompiling(6) is not None
    step(5)
    assert acc.warn_if_recompiling(7) is None  # cached now: reported once only
