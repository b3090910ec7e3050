"""Image-folder loading: ``data=image_folder``'s train loader vs a hand-written torchvision loop.

Run (needs torchvision: the venv of scripts/xla_env.sh):
``~/.cache/declarative_train/xla-venv/bin/python bench/bench_image_folder.py [--images 3000] [--size 64]``.
Draws a folder of coloured shapes (PNG, ``--size`` pixels a side), then times whole epochs of the
train split, ``num_workers=2``, batch 64, shuffled, with the default train steps (resize, padded
random crop, horizontal flip, float, normalise): through :class:`ImageFolderData`'s loader, and
through ``torchvision.datasets.ImageFolder`` + ``DataLoader`` with the same transform over the same
files. Prints samples/s of each (best of ``--repeats`` epochs) and their ratio (target >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from declarative_train.data import ImageFolderData  # noqa: E402
from declarative_train.data.drawn_shapes import write_shapes_folder  # noqa: E402


def _epoch(loader: Iterable[Any]) -> tuple[int, float]:
    start, count = time.perf_counter(), 0
    for images, _ in loader:
        count += len(images)
    return count, time.perf_counter() - start


def _best(loader: Iterable[Any], repeats: int) -> float:
    """Samples/s of the fastest of ``repeats`` epochs (workers persist, so the first warms them)."""
    return max(count / seconds for count, seconds in (_epoch(loader) for _ in range(repeats)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    with tempfile.TemporaryDirectory() as tmp:
        root = write_shapes_folder(Path(tmp) / "shapes", per_class=args.images // 3, size=args.size)
        size = (args.size, args.size)
        module = ImageFolderData(root=str(root), image_size=args.size, batch_size=64, num_workers=args.workers,
                                 persistent_workers=True, val_fraction=0.0, test_fraction=0.0)
        module.setup()
        ours = _best(module.dataloader("train", shuffle=True), args.repeats)

        transform = v2.Compose([v2.ToImage(), v2.Resize(size, antialias=True),
                                v2.RandomCrop(size, padding=args.size // 8, padding_mode="reflect"),
                                v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                                v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        folder = ImageFolder(str(root), transform=transform)
        hand = torch.utils.data.DataLoader(folder, batch_size=64, shuffle=True, num_workers=args.workers,
                                           persistent_workers=True)
        plain = _best(hand, args.repeats)

    print(f"{args.images} images of {args.size}x{args.size}, num_workers={args.workers}, batch 64:")
    print(f"  data=image_folder loader     {ours:9.0f} samples/s")
    print(f"  ImageFolder + DataLoader     {plain:9.0f} samples/s")
    print(f"  ratio                        {ours / plain:9.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
