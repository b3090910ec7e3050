"""A generated image folder of coloured shapes (circle, square, triangle), for ``experiment=shapes_folder``.

:func:`write_shapes_folder` draws the images with PIL (offline, seeded); :class:`DrawnShapes` is
``data=image_folder`` on such a folder, written first when it is not there yet.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from declarative_train.data.image_folder import ImageFolderData

SHAPES = ("circle", "square", "triangle")


def write_shapes_folder(root: str | Path, *, per_class: int = 100, size: int = 32, seed: int = 0,
                        mode: str = "RGB") -> Path:
    """Write ``per_class`` PNGs of each shape under ``root/<shape>/`` and return ``root``.

    Each image: a random dark background, one shape of random colour, size and position.
    ``mode="L"`` writes grayscale images.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    root = Path(root)
    for shape in SHAPES:
        folder = root / shape
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            background = tuple(rng.randrange(0, 80) for _ in range(3))
            colour = tuple(rng.randrange(120, 256) for _ in range(3))
            image = Image.new("RGB", (size, size), background)
            side = rng.uniform(0.4, 0.8) * size
            x0, y0 = rng.uniform(0, size - side), rng.uniform(0, size - side)
            box = (x0, y0, x0 + side, y0 + side)
            draw = ImageDraw.Draw(image)
            if shape == "circle":
                draw.ellipse(box, fill=colour)
            elif shape == "square":
                draw.rectangle(box, fill=colour)
            else:
                draw.polygon([(x0 + side / 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], fill=colour)
            image.convert(mode).save(folder / f"{shape}_{index:04d}.png")
    return root


class DrawnShapes(ImageFolderData):
    """:class:`ImageFolderData` on a folder of drawn shapes at ``root``, written when it is missing."""

    def __init__(self, *, root: str, per_class: int = 100, data_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(root=root, **kwargs)
        self.per_class, self.data_seed = per_class, data_seed

    def setup(self) -> None:
        if not self.datasets and not Path(self.root).is_dir():
            size = self.image_size[0]
            staging = Path(f"{self.root}.partial")  # renamed when complete: a crash leaves no half folder
            write_shapes_folder(staging, per_class=self.per_class, size=size, seed=self.data_seed)
            staging.rename(self.root)
        super().setup()
