"""Local weight files for library models, fitted to the data: another head size, other input channels.

A file made for ImageNet (1000 classes, RGB) still starts a model for 3 grayscale classes: the
classifier head keeps its fresh initialisation when its shape differs, and a first convolution
made for another number of input channels is averaged over them (the usual trick for grayscale).
Files are read with ``torch.load(weights_only=True)``: tensors only, no code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from declarative_train.errors import ArgumentError

log = logging.getLogger(__name__)

#: Keys a file may wrap its state dict in (timm and Lightning checkpoints, ``{"model": ...}``).
_WRAPPERS = ("state_dict", "model", "model_state_dict")


def check_weights_file(path: str, owner: str, argument: str) -> Path:
    """``path`` as a file that exists, else an :class:`ArgumentError` naming ``argument``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ArgumentError(owner, argument, f"is not a file: {str(file.resolve())!r} (a local weights file: "
                                             f"a state dict saved with torch.save)")
    return file


def load_weights(model: nn.Module, path: str, owner: str, argument: str = "weights") -> None:
    """Load the state dict in ``path`` into ``model``; a head or first conv of another shape is adapted."""
    file = check_weights_file(path, owner, argument)
    if any(p.is_meta for p in model.parameters()):
        return  # the configuration check builds on the meta device: nothing to load into
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of many kinds: name the file
        raise ArgumentError(owner, argument, f"cannot be read as a state dict: {file}: {exc}") from None
    state = _unwrap(state, owner, argument)
    own = model.state_dict()
    first_conv = next((f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    fitted, fresh = {}, []
    for key, value in state.items():
        target = own.get(key)
        if target is None or target.shape == value.shape:
            fitted[key] = value
        elif key == first_conv and value.ndim == 4 and value.shape[0] == target.shape[0]:
            fitted[key] = _to_channels(value, target.shape[1])
        else:
            fresh.append(key)
    result = model.load_state_dict({k: v for k, v in fitted.items() if k in own}, strict=False)
    unexpected = sorted(set(fitted) - set(own))
    missing = sorted(set(result.missing_keys) - set(fresh))
    if missing or unexpected:
        raise ArgumentError(owner, argument, f"does not fit the model: {file} lacks {missing[:5]} and has "
                                             f"{unexpected[:5]} it does not know")
    if fresh:
        log.info("%s: %s loaded; %s keep their fresh initialisation (other shapes: the classes of the data)",
                 owner, file.name, ", ".join(fresh))


def _unwrap(state: object, owner: str, argument: str) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in _WRAPPERS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArgumentError(owner, argument, "holds no state dict (a dict of tensor names to tensors)")
    prefix = "module."  # saved from a DDP-wrapped model
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def _to_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A conv weight for ``channels`` inputs from one for another count: the mean over the old
    inputs, repeated, and rescaled so a gray image gives the activations of its RGB copy."""
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, channels, 1, 1) * (weight.shape[1] / channels)
