"""Nested batches move to a device with their container types; ``auto_move_data``."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, namedtuple

import torch

from declarative_train import auto_move_data
from declarative_train.utils.tree import move_to_device

Pair = namedtuple("Pair", "x y")


@dataclasses.dataclass
class Batch:
    inputs: torch.Tensor
    meta: dict
    name: str = "b"


def test_nested_containers_keep_their_types() -> None:
    batch = {"a": (torch.ones(1), [torch.zeros(2), Pair(torch.ones(1), 3)]),
             "b": Batch(torch.ones(2), {"k": torch.ones(1)}), "c": OrderedDict(z=torch.ones(1))}
    moved = move_to_device(batch, torch.device("meta"))
    assert moved["a"][0].is_meta and isinstance(moved["a"], tuple)
    assert isinstance(moved["a"][1][1], Pair) and moved["a"][1][1].x.is_meta and moved["a"][1][1].y == 3
    assert isinstance(moved["b"], Batch) and moved["b"].inputs.is_meta and moved["b"].meta["k"].is_meta
    assert isinstance(moved["c"], OrderedDict) and moved["c"]["z"].is_meta


def test_auto_move_data_moves_inputs_to_the_module_device() -> None:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        @auto_move_data
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    net = Net().to(torch.float64).to("meta")
    out = net(torch.ones(3, 2))
    assert out.is_meta
