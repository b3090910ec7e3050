"""The reference networks: the CNN's layout follows the image size, bad arguments name themselves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from declarative_train.errors import ArgumentError
from declarative_train.models import CNN, MLP


def _downsamplers(net: CNN) -> list[nn.Module]:
    return [m for m in net.features if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]


@pytest.mark.parametrize(("shape", "channels", "map_side"), [
    ((1, 8, 8), [32, 64], 2),           # digits: 8 -> 4 -> 2
    ((1, 8, 8), [8, 8, 8], 2),          # a third block keeps 2x2
    ((3, 32, 32), [8, 16, 32], 2),      # 32 -> 16 -> 8 -> 4, averaged to 2
    ((3, 28, 28), [8, 16], 2),          # 28 -> 14 -> 7, averaged to 2
    ((1, 3, 3), [4], 2),                # too small to halve: averaged to 2
])
def test_the_map_before_the_head_is_head_size_square(shape: tuple[int, int, int], channels: list[int],
                                                      map_side: int) -> None:
    net = CNN(shape, channels, 10)
    features = net.features(torch.randn(4, *shape))
    assert features.shape == (4, channels[-1], map_side, map_side)
    assert net(torch.randn(4, *shape)).shape == (4, 10)
    assert net(torch.randn(4, shape[0] * shape[1] * shape[2])).shape == (4, 10)  # flat rows


def test_digits_are_halved_twice_and_32x32_three_times() -> None:
    assert len(_downsamplers(CNN([1, 8, 8], [8, 8, 8], 10))) == 2
    assert len(_downsamplers(CNN([3, 32, 32], [8, 8, 8, 8, 8], 10))) == 4  # 32 -> 2 in four halvings


@pytest.mark.parametrize("pool", ["avg", "max", "stride"])
def test_every_pool_gives_the_same_head(pool: str) -> None:
    net = CNN([3, 17, 17], [8, 16], 5, convs_per_block=2, pool=pool, head_size=2, dropout=0.2)
    head = net.head[-1]
    assert isinstance(head, nn.Linear) and head.in_features == 16 * 2 * 2
    assert net(torch.randn(2, 3, 17, 17)).shape == (2, 5)
    strided = [m for m in net.features if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert (len(strided), len(_downsamplers(net))) == ((2, 0) if pool == "stride" else (0, 2))


def test_head_size_one_is_global_average_pooling() -> None:
    net = CNN([1, 8, 8], [16, 32], 10, head_size=1)
    assert net.head[-1].in_features == 32


def test_depth_and_width_come_from_config() -> None:
    net = CNN([1, 8, 8], [16, 32, 64], 10, convs_per_block=2)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64]


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"input_shape": [64]}, "input_shape"),
    ({"input_shape": [1, 0, 8]}, "input_shape"),
    ({"channels": []}, "channels"),
    ({"convs_per_block": 0}, "convs_per_block"),
    ({"head_size": 0}, "head_size"),
    ({"pool": "median"}, "pool"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_cnn_arguments_name_the_argument(kwargs: dict[str, object], argument: str) -> None:
    arguments: dict[str, object] = {"input_shape": [1, 8, 8], "channels": [8], "out_features": 10, **kwargs}
    with pytest.raises(ArgumentError, match=argument):
        CNN(**arguments)  # type: ignore[arg-type]


def test_mlp_without_hidden_layers_is_linear() -> None:
    net = MLP(10, [], 1)
    assert [type(m) for m in net] == [nn.Linear]
