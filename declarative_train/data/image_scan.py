"""What an image folder holds: its layout, classes, files and bad files, checked before anything loads.

Two layouts: ``root/train/<class>/<image>`` (with ``val/`` and ``test/`` beside ``train/``
optional), or ``root/<class>/<image>`` split by fractions. Classes are the train folder's
subfolders in sorted order, as torchvision's ``ImageFolder`` finds them (hidden folders left
out). Problems with the folder raise :class:`~declarative_train.errors.ArgumentError` naming
``root`` (or ``skip_bad_files`` for unreadable images), which the builder reports as
``data.root``. Only file names and image headers are read here (with PIL, which torchvision
installs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs

from declarative_train.errors import ArgumentError
from declarative_train.utils.text import did_you_mean

log = logging.getLogger(__name__)

OWNER = "ImageFolderData"
#: File extensions taken as images (torchvision's ``IMG_EXTENSIONS``).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")
#: PIL modes read as one channel; every other mode is converted to RGB.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
_LAYOUT = "expected one folder per class (root/<class>/<image>) or train/ val/ test/ folders of those"


@attrs.frozen
class FolderScan:
    """The files of each split folder found (``train`` always; ``val``/``test`` when present)."""

    classes: list[str]
    samples: dict[str, list[tuple[str, int]]]
    mode: str  # "L" or "RGB": what every image is converted to
    skipped: int = 0


def scan_folder(root: str | Path, *, skip_bad_files: bool = False, verify: bool = True) -> FolderScan:
    """The classes and images under ``root``; bad files raise (or are left out with ``skip_bad_files``)."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ArgumentError(OWNER, "root", f"is not a folder: {str(base.resolve())!r}")
    split_layout = (base / "train").is_dir()
    unknown = [name for name in _class_folders(base) if name not in SPLIT_FOLDERS] if split_layout else []
    if unknown:  # "valid/" beside "train/" would otherwise be ignored, and val carved from train
        raise ArgumentError(OWNER, "root", f"has train/ and also {unknown}: only train/ val/ test/ are read "
                                           f"there.{did_you_mean(unknown[0], SPLIT_FOLDERS)}")
    folders = {s: base / s for s in SPLIT_FOLDERS if (base / s).is_dir()} if split_layout else {"train": base}
    classes = _class_folders(folders["train"])
    if not classes:
        raise ArgumentError(OWNER, "root", f"has no images in {str(folders['train'])!r}: {_LAYOUT}")
    samples = {split: _images(folder, classes, required=split == "train") for split, folder in folders.items()}
    skipped = 0
    if verify:
        samples, skipped = _drop_bad(samples, skip_bad_files)
    mode = "L" if all(_mode(files[0][0]) in GRAY_MODES for files in _first_per_class(samples["train"])) else "RGB"
    return FolderScan(classes=classes, samples=samples, mode=mode, skipped=skipped)


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _images(folder: Path, classes: list[str], *, required: bool) -> list[tuple[str, int]]:
    """``(path, class index)`` of every image, in ``ImageFolder``'s order; a class folder of the train
    split without images is an error, and a val/test class folder the train split lacks too."""
    extra = sorted(set(_class_folders(folder)) - set(classes))
    if extra:
        raise ArgumentError(OWNER, "root", f"{str(folder)!r} has class folders the train split lacks: {extra}")
    found = []
    for index, name in enumerate(classes):
        files = sorted(str(Path(dirpath, file)) for dirpath, _, names in os.walk(folder / name, followlinks=True)
                       for file in names if file.lower().endswith(IMAGE_EXTENSIONS))
        if not files and required:
            raise ArgumentError(OWNER, "root", f"class folder {str(folder / name)!r} has no images "
                                               f"({', '.join(IMAGE_EXTENSIONS)}): add some or remove the folder")
        found += [(file, index) for file in files]
    return found


def _drop_bad(samples: dict[str, list[tuple[str, int]]], skip: bool) -> tuple[dict[str, list[tuple[str, int]]], int]:
    """Open and verify every image; raise on the first bad one, or leave the bad ones out."""
    kept: dict[str, list[tuple[str, int]]] = {}
    bad: list[str] = []
    for split, files in samples.items():
        kept[split] = []
        for path, label in files:
            problem = _problem(path)
            if problem is None:
                kept[split].append((path, label))
            elif not skip:
                raise ArgumentError(OWNER, "root", f"cannot read the image {path!r} ({problem}): fix or remove "
                                                   f"it, or set data.skip_bad_files=true")
            else:
                bad.append(path)
    if bad:
        log.warning("data.skip_bad_files: left out %d unreadable image%s (first: %s)", len(bad),
                    "s" if len(bad) > 1 else "", bad[0])
    if not kept["train"]:
        raise ArgumentError(OWNER, "root", "has no readable images in its train split")
    return kept, len(bad)


def _problem(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()  # headers and (PNG) chunk checksums, without decoding
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad file; all mean unreadable
        return f"{type(exc).__name__}: {exc}"
    return None


def _mode(path: str) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return str(image.mode)


def _first_per_class(files: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    firsts: dict[int, list[tuple[str, int]]] = {}
    for path, label in files:
        firsts.setdefault(label, [(path, label)])
    return list(firsts.values())
