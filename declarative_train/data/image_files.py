"""The torchvision side of ``data=image_folder``: datasets over scanned files, and the transforms.

Imported only once torchvision is known to import (:func:`declarative_train.utils.extras.try_import`).
Every pipeline is ``ToImage`` (PIL -> uint8 tensor), the image steps (the config's list, or the
defaults: resize, and random crop + horizontal flip for training), then ``ToDtype(float32,
scale=True)`` and ``Normalize``: config lists hold only image steps and never need a dtype.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

#: Per-channel statistics used when ``mean``/``std`` are null: ImageNet's for RGB (what pretrained
#: torchvision and timm weights expect), 0.5 for one channel.
DEFAULT_STATS = {3: ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), 1: ([0.5], [0.5])}


class ImageFiles(ImageFolder):
    """torchvision's ``ImageFolder`` over files already found (:func:`.image_scan.scan_folder`).

    Images are converted to ``mode`` (``L`` or ``RGB``) so every sample has the same channels; a
    file that fails to decode raises an error naming it.
    """

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], mode: str, transform: Any) -> None:
        # Not ImageFolder.__init__: the folder was scanned (and checked) once already.
        self.root, self.transform, self.target_transform, self.transforms = "", transform, None, None
        self.classes, self.class_to_idx = list(classes), {name: i for i, name in enumerate(classes)}
        self.samples = self.imgs = list(samples)
        self.targets = [label for _, label in samples]
        self.mode = mode

    def loader(self, path: str) -> Image.Image:
        """The image at ``path`` in this dataset's mode."""
        try:
            with Image.open(path) as image:
                return image.convert(self.mode)
        except Exception as exc:  # noqa: BLE001 - any decoder error: say which file
            raise RuntimeError(f"cannot read the image {path!r}: {type(exc).__name__}: {exc} (set "
                               f"data.skip_bad_files=true to leave unreadable files out)") from exc

    def with_transform(self, transform: Any) -> ImageFiles:
        """The same files under another transform."""
        other = copy.copy(self)
        other.transform = transform
        return other


def pipeline(steps: Sequence[Any], mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """``ToImage``, ``steps``, float scaled to [0, 1], ``Normalize(mean, std)``."""
    return v2.Compose([v2.ToImage(), *steps, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(mean), list(std))])


def default_steps(size: tuple[int, int], train: bool) -> list[Any]:
    """Resize to ``size``; for training also a random crop (padded by an eighth) and a horizontal flip."""
    steps: list[Any] = [v2.Resize(size, antialias=True)]
    if train:
        padding = max(1, min(size) // 8)
        steps += [v2.RandomCrop(size, padding=padding, padding_mode="reflect"), v2.RandomHorizontalFlip()]
    return steps
