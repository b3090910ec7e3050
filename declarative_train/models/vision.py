"""Classifiers from torchvision (``model=torchvision``) and timm (``model=timm``), by name.

Both are sized from the data: ``num_classes`` outputs and ``input_shape[0]`` input channels
(``${data.image_shape}``; null: RGB). No weights are downloaded: ``weights`` is null (random
initialisation) or a local file (:mod:`.weights`). torchvision and timm are imported when a
model is built; when they do not import, the error names ``pip install 'declarative_train[vision]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
from torch import nn

from declarative_train.errors import ArgumentError, MissingExtra
from declarative_train.models.weights import check_weights_file, load_weights
from declarative_train.utils.extras import try_import
from declarative_train.utils.text import did_you_mean


class TorchvisionNet(nn.Module):
    """A classification model of ``torchvision.models`` (``get_model(name)``): ``num_classes``
    outputs; a first convolution for ``input_shape[0]`` channels when the images are not RGB;
    ``weights``: a local state-dict file (its head and first conv adapted when their shapes differ)."""

    def __init__(self, name: str, num_classes: int, input_shape: Sequence[int] | None = None,
                 weights: str | None = None) -> None:
        super().__init__()
        models = _require("torchvision", "model=torchvision").models
        owner = type(self).__name__
        known = models.list_models(module=models)  # classification models only
        if name not in known:
            other = " (a detection/segmentation/video model: model=torchvision builds classifiers)" \
                if name in models.list_models() else did_you_mean(name, known)
            raise ArgumentError(owner, "name", f"{name!r} is not a torchvision classification model.{other}")
        channels = _sizes(owner, num_classes, input_shape)
        if weights is not None:
            check_weights_file(weights, owner, "weights")
        self.net = _on_meta_safely(lambda: models.get_model(name, weights=None, num_classes=num_classes))
        if channels != 3:
            _replace_first_conv(self.net, channels, owner)
        if weights is not None:
            load_weights(self.net, weights, owner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TimmNet(nn.Module):
    """A timm model (``timm.create_model(name, pretrained=False, num_classes=..., in_chans=...)``);
    ``checkpoint``: a local state-dict file (head and first conv adapted when their shapes differ)."""

    def __init__(self, name: str, num_classes: int, input_shape: Sequence[int] | None = None,
                 checkpoint: str | None = None) -> None:
        super().__init__()
        timm = _require("timm", "model=timm")
        owner = type(self).__name__
        known = timm.list_models()
        if name.split(".")[0] not in known:  # "resnet18.a1_in1k": a pretrained tag on a known name
            raise ArgumentError(owner, "name", f"{name!r} is not a timm model.{did_you_mean(name, known)}")
        channels = _sizes(owner, num_classes, input_shape)
        if checkpoint is not None:
            check_weights_file(checkpoint, owner, "checkpoint")
        self.net = _on_meta_safely(lambda: timm.create_model(name, pretrained=False, num_classes=num_classes,
                                                             in_chans=channels))
        if checkpoint is not None:
            load_weights(self.net, checkpoint, owner, "checkpoint")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _require(module: str, what: str) -> ModuleType:
    found, reason = try_import(module)
    if found is None:
        raise MissingExtra(what, module, "vision", reason)
    if module == "torchvision":
        import torchvision.models  # noqa: F401 - a submodule get_model lives in

    return found


def _sizes(owner: str, num_classes: Any, input_shape: Sequence[int] | None) -> int:
    """The input channel count, once ``num_classes`` and ``input_shape`` are checked."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ArgumentError(owner, "num_classes", f"must be an int >= 1, got {num_classes!r}")
    if input_shape is None:
        return 3
    if len(input_shape) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in input_shape):
        raise ArgumentError(owner, "input_shape", f"must be [channels, height, width], got {list(input_shape)!r}")
    return int(input_shape[0])


def _on_meta_safely(make: Any) -> nn.Module:
    """``make()``; on the meta device (the configuration check) a library's own failure is not a
    configuration problem, so it leaves as a RuntimeError the check passes over."""
    if torch.get_default_device().type != "meta":
        return make()
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - the real build reports it
        raise RuntimeError(f"cannot be built on the meta device: {exc}") from exc


def _replace_first_conv(net: nn.Module, channels: int, owner: str) -> None:
    """Swap the first ``Conv2d`` for one taking ``channels`` inputs (all else the same)."""
    found = next(((name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d)), None)
    if found is None:
        raise ArgumentError(owner, "input_shape", f"has {channels} channels, but the model has no Conv2d to adapt")
    name, old = found
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding,  # type: ignore[arg-type]
                    old.dilation, bias=old.bias is not None, padding_mode=old.padding_mode)  # type: ignore[arg-type]
    parent_name, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, attr, new)
