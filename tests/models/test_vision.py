"""model=torchvision / model=timm: sized from the data, local weight files, names with did-you-mean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from declarative_train.build import build, check_components
from declarative_train.config.validate import validate_config
from declarative_train.errors import ArgumentError, MissingExtra
from declarative_train.models import TimmNet, TorchvisionNet
from tests.vision_support import INSTALL, vision_test, without_vision


@vision_test
def test_torchvision_resnet18_sized_from_the_data_runs_on_small_gray_images() -> None:
    net = TorchvisionNet("resnet18", num_classes=3, input_shape=[1, 32, 32])
    assert net.net.conv1.in_channels == 1 and net.net.fc.out_features == 3
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 3)


@vision_test
def test_unknown_names_suggest_the_closest_known_one() -> None:
    with pytest.raises(ArgumentError, match="'resnet81' is not a torchvision classification model. Did you mean 'resnet18'"):
        TorchvisionNet("resnet81", num_classes=3)
    with pytest.raises(ArgumentError, match="fasterrcnn_resnet50_fpn.*model=torchvision builds classifiers"):
        TorchvisionNet("fasterrcnn_resnet50_fpn", num_classes=3)
    with pytest.raises(ArgumentError, match="'resnt10t' is not a timm model. Did you mean 'resnet10t'"):
        TimmNet("resnt10t", num_classes=3)


@vision_test
def test_a_local_imagenet_file_loads_with_a_new_head_and_a_gray_first_conv(tmp_path: Path) -> None:
    from torchvision.models import get_model

    source = get_model("resnet18", weights=None)  # 1000 classes, RGB: as a downloaded file would be
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    net = TorchvisionNet("resnet18", num_classes=3, input_shape=[1, 32, 32], weights=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(net.net.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    torch.testing.assert_close(net.net.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))
    assert net.net.fc.out_features == 3
    gray = torch.rand(1, 1, 32, 32)
    source.eval(), net.eval()
    torch.testing.assert_close(net.net.layer1(net.net.maxpool(net.net.relu(net.net.bn1(net.net.conv1(gray))))),
                               source.layer1(source.maxpool(source.relu(source.bn1(source.conv1(gray.expand(1, 3, 32, 32)))))))


@vision_test
def test_weight_files_that_do_not_fit_are_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="weights is not a file"):
        TorchvisionNet("resnet18", num_classes=3, weights=str(tmp_path / "missing.pth"))
    torch.save({"something.else": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ArgumentError, match="does not fit the model"):
        TorchvisionNet("resnet18", num_classes=3, weights=str(tmp_path / "other.pth"))


@vision_test
def test_timm_model_with_a_local_checkpoint(tmp_path: Path) -> None:
    import timm

    source = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "ckpt.pth")
    net = TimmNet("resnet10t", num_classes=3, input_shape=[3, 32, 32], checkpoint=str(tmp_path / "ckpt.pth"))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    first = next(iter(source.state_dict()))
    torch.testing.assert_close(net.net.state_dict()[first], source.state_dict()[first])


@vision_test
def test_models_build_on_the_meta_device_for_the_configuration_check() -> None:
    with torch.device("meta"):
        assert TorchvisionNet("resnet18", num_classes=3).net.fc.weight.is_meta
        assert next(TimmNet("resnet10t", num_classes=3).parameters()).is_meta


@vision_test
@pytest.mark.parametrize("choice", ["model=torchvision", "model=timm"])
def test_vision_model_choices_build_on_digits(compose_cfg: Callable[..., DictConfig], choice: str) -> None:
    cfg = compose_cfg([choice])
    validate_config(cfg)
    check_components(cfg)
    task = build(cfg).task
    assert task(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@without_vision
def test_without_the_extra_the_error_names_it() -> None:
    for make, what in ((lambda: TorchvisionNet("resnet18", 3), "model=torchvision needs torchvision"),
                       (lambda: TimmNet("resnet10t", 3), "model=timm needs timm")):
        with pytest.raises(MissingExtra, match=f"{what}.*{INSTALL}".replace("[", "\\[")):
            make()
