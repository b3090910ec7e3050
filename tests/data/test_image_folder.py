"""data=image_folder: the folder scan (no torchvision needed) and the datasets and shapes (vision tier)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from declarative_train.data.drawn_shapes import write_shapes_folder
from declarative_train.data.image_folder import ImageFolderData
from declarative_train.data.image_scan import scan_folder
from declarative_train.errors import ArgumentError, MissingExtra
from tests.vision_support import INSTALL, vision_test, without_vision

pytest.importorskip("PIL")


def test_scan_finds_classes_and_files_in_class_folders(tmp_path: Path) -> None:
    write_shapes_folder(tmp_path / "shapes", per_class=4)
    scan = scan_folder(tmp_path / "shapes")
    assert scan.classes == ["circle", "square", "triangle"]
    assert list(scan.samples) == ["train"] and len(scan.samples["train"]) == 12
    assert scan.mode == "RGB" and scan.skipped == 0
    assert [label for _, label in scan.samples["train"]] == [0] * 4 + [1] * 4 + [2] * 4


def test_scan_of_train_val_test_folders_and_grayscale(tmp_path: Path) -> None:
    for split in ("train", "val"):
        write_shapes_folder(tmp_path / split, per_class=3, mode="L")
    scan = scan_folder(tmp_path)
    assert set(scan.samples) == {"train", "val"} and scan.mode == "L"


@pytest.mark.parametrize("case,message", [
    ("missing", "root is not a folder"),
    ("empty", "root has no images"),
    ("empty_class", "class folder .*square.* has no images"),
    ("val_extra_class", "has class folders the train split lacks: \\['hexagon'\\]"),
    ("corrupt", "cannot read the image .*broken.png.*skip_bad_files=true"),
    ("valid_folder", "has train/ and also \\['valid'\\]: only train/ val/ test/ are read there. Did you mean 'val'"),
])
def test_scan_rejects_bad_folders_naming_the_problem(tmp_path: Path, case: str, message: str) -> None:
    root = tmp_path / "images"
    if case != "missing":
        root.mkdir()
    if case == "empty_class":
        write_shapes_folder(root, per_class=2)
        for file in (root / "square").iterdir():
            file.unlink()
    if case == "val_extra_class":
        write_shapes_folder(root / "train", per_class=2)
        write_shapes_folder(root / "val", per_class=2)
        (root / "val" / "square").rename(root / "val" / "hexagon")
    if case == "valid_folder":
        write_shapes_folder(root / "train", per_class=2)
        write_shapes_folder(root / "valid", per_class=2)
    if case == "corrupt":
        write_shapes_folder(root, per_class=2)
        (root / "circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ArgumentError, match=message) as caught:
        scan_folder(root)
    assert caught.value.argument == "root"


def test_skip_bad_files_leaves_them_out_and_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_shapes_folder(tmp_path, per_class=2)
    (tmp_path / "circle" / "broken.png").write_bytes(b"garbage")
    (tmp_path / "square" / "truncated.png").write_bytes((tmp_path / "square" / "square_0000.png").read_bytes()[:60])
    scan = scan_folder(tmp_path, skip_bad_files=True)
    assert scan.skipped == 2 and len(scan.samples["train"]) == 6
    assert "left out 2 unreadable images" in caplog.text


@without_vision
def test_without_torchvision_the_error_names_the_extra(tmp_path: Path) -> None:
    write_shapes_folder(tmp_path, per_class=2)
    with pytest.raises(MissingExtra, match=f"data=image_folder needs torchvision.*{INSTALL}".replace("[", "\\[")):
        ImageFolderData(root=str(tmp_path)).data_shapes()


@vision_test
def test_shapes_from_class_folders_split_by_fraction(tmp_path: Path) -> None:
    write_shapes_folder(tmp_path, per_class=20)
    data = ImageFolderData(root=str(tmp_path), image_size=16, val_fraction=0.2, test_fraction=0.1)
    assert data.data_shapes() == {"num_classes": 3, "class_names": ["circle", "square", "triangle"],
                                  "image_shape": [3, 16, 16], "num_features": 768, "task": "classification"}
    assert {split: len(d) for split, d in data.datasets.items()} == {"train": 42, "val": 12, "test": 6}
    image, label = data.datasets["val"][0]
    assert image.dtype == torch.float32 and image.shape == (3, 16, 16) and isinstance(label, int)
    assert data.num_classes == 3 and data.image_shape == [3, 16, 16]


@vision_test
def test_train_val_test_folders_grayscale_and_batches_through_workers(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        write_shapes_folder(tmp_path / split, per_class=4, mode="L", seed=len(split))
    data = ImageFolderData(root=str(tmp_path), image_size=32, batch_size=5, num_workers=2)
    assert data.data_shapes()["image_shape"] == [1, 32, 32]
    assert {split: len(d) for split, d in data.datasets.items()} == {"train": 12, "val": 12, "test": 12}
    images, labels = next(iter(data.dataloader("train", shuffle=True)))
    assert images.shape == (5, 1, 32, 32) and labels.dtype == torch.int64


@vision_test
def test_transform_lists_replace_the_default_steps(tmp_path: Path) -> None:
    from torchvision.transforms import v2

    write_shapes_folder(tmp_path, per_class=5)
    data = ImageFolderData(root=str(tmp_path), train_transforms=[v2.RandomResizedCrop(20)],
                           eval_transforms=[v2.Resize(24), v2.CenterCrop(20)], mean=[0, 0, 0], std=[1, 1, 1])
    assert data.data_shapes()["image_shape"] == [3, 20, 20]
    image, _ = data.datasets["train"][0]
    assert image.shape == (3, 20, 20) and float(image.min()) >= 0 and float(image.max()) <= 1


@vision_test
def test_the_train_split_is_predicted_under_the_eval_transforms_in_order(tmp_path: Path) -> None:
    from functools import partial

    from declarative_train import Classification, Executor
    from declarative_train.models import CNN

    write_shapes_folder(tmp_path, per_class=12)
    data = ImageFolderData(root=str(tmp_path), image_size=16, batch_size=8, drop_last=True, val_fraction=0.25,
                           test_fraction=0)
    data.setup()
    train = data.datasets["train"]  # 27 rows: the last 3 are dropped by training's loader
    rows = data.evaluation_dataset("train")
    assert len(rows) == len(train) == 27 and rows.indices == train.indices
    images = torch.stack([rows[i][0] for i in range(len(rows))])
    assert torch.equal(images, torch.stack([rows[i][0] for i in range(len(rows))]))  # no random crop or flip
    assert not all(torch.equal(train[i][0], rows[i][0]) for i in range(len(rows)))  # training's are augmented
    assert rows.dataset.transform is data.datasets["val"].dataset.transform  # the val split's pipeline
    torch.manual_seed(0)
    ex = Executor(task=Classification(CNN([3, 16, 16], [4], 3), torch.nn.CrossEntropyLoss()), data=data,
                  optimizer=partial(torch.optim.SGD, lr=0.1))
    predicted = torch.cat(ex.predict("train"))
    ex.task.eval()
    with torch.no_grad():
        assert torch.allclose(predicted, ex.task(images), atol=1e-5)


@vision_test
def test_shapes_given_in_the_config_must_match_the_images(tmp_path: Path) -> None:
    write_shapes_folder(tmp_path, per_class=3)
    with pytest.raises(ArgumentError, match=r"num_classes is 4 in the config, but the images have 3"):
        ImageFolderData(root=str(tmp_path), image_size=8, num_classes=4).setup()
    with pytest.raises(ArgumentError, match=r"mean and data.std need 3 values"):
        ImageFolderData(root=str(tmp_path), mean=[0.5], std=[0.5]).setup()


@vision_test
def test_an_image_that_fails_to_decode_names_the_file(tmp_path: Path) -> None:
    write_shapes_folder(tmp_path, per_class=3)
    data = ImageFolderData(root=str(tmp_path), image_size=8, val_fraction=0, test_fraction=0)
    data.setup()
    base = data.datasets["train"].dataset
    path, _ = base.samples[0]
    Path(path).write_bytes(b"gone bad after the scan")
    index = data.datasets["train"].indices.index(0)
    with pytest.raises(RuntimeError, match=f"cannot read the image '{path}'"):
        data.datasets["train"][index]
