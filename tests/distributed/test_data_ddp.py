"""Data modules that read their own files, on 2 DDP workers: the same training as one process.

The image-folder tests are also ``vision`` tests: they run in scripts/run_vision_tests.sh's venv,
where torchvision imports, and skip under ``make test-ddp``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch

from declarative_train.data.drawn_shapes import write_shapes_folder
from tests.distributed._procs import DDP, only_run_dir, results, run
from tests.vision_support import vision_test

pytestmark = pytest.mark.ddp
MODULE = ["-m", "declarative_train"]


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])


def _two_workers_and_one_process(tmp_path: Path, common: list[str], batch_size: int) -> tuple[Path, Path]:
    """Run folders of ``common`` on 2 DDP workers (``batch_size`` each, synchronised batch norm) and in
    one process with the global batch, after checking both end with the same weights."""
    rc, _, err = run([*MODULE, *DDP, f"data.batch_size={batch_size}", "accelerator.sync_batchnorm=true", *common],
                     tmp_path / "ddp")
    assert rc == 0, err
    rc, _, err = run([*MODULE, f"data.batch_size={2 * batch_size}", *common], tmp_path / "one")
    assert rc == 0, err
    ddp_dir, one_dir = only_run_dir(tmp_path / "ddp"), only_run_dir(tmp_path / "one")
    ddp_state, one_state = _state(ddp_dir), _state(one_dir)
    assert ddp_state.keys() == one_state.keys()
    for key in one_state:
        torch.testing.assert_close(ddp_state[key], one_state[key], atol=1e-4, rtol=1e-3, msg=key)
    return ddp_dir, one_dir


def test_hf_dataset_on_two_workers_trains_like_one_process_with_the_global_batch(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    # Each worker reads the saved dataset itself; full global batches of 64, synchronised batch norm, no dropout.
    common = ["experiment=hf_digits", "trainer.max_epochs=2", "trainer.limit_train_batches=8", "model.net.dropout=0.0",
              "logger=none", "~callbacks.progress_bar"]
    ddp_dir, one_dir = _two_workers_and_one_process(tmp_path, common, batch_size=32)
    assert results(ddp_dir)["global_step"] == results(one_dir)["global_step"] == 16
    assert results(ddp_dir)["test"]["test/acc"] == pytest.approx(results(one_dir)["test"]["test/acc"], abs=1e-3)


#: Image folder runs without augmentation (random crops draw from each process's own RNG, so 1 and
#: 2 processes would see other pixels), no dropout, loaders in the process.
IMAGES = ["data=image_folder", "data.image_size=32", "data.train_transforms=[]", "data.num_workers=0",
          "model=cnn", "model.net.dropout=0.0", "logger=none", "~callbacks.progress_bar"]


@vision_test
def test_image_folder_on_two_workers_trains_like_one_process_with_the_global_batch(tmp_path: Path) -> None:
    # 150 images, 106 to train: batches of 32, 32, 32, 10 (16, 16, 16, 5 per rank: no padded repeats)
    root = write_shapes_folder(tmp_path / "shapes", per_class=50)
    common = [*IMAGES, f"data.root={root}", "trainer.max_epochs=2"]
    ddp_dir, one_dir = _two_workers_and_one_process(tmp_path, common, batch_size=16)
    assert results(ddp_dir)["global_step"] == results(one_dir)["global_step"] == 8
    for name, value in results(one_dir)["test"].items():
        assert results(ddp_dir)["test"][name] == pytest.approx(value, abs=1e-4), name


def _undecodable_png(path: Path) -> None:
    """Rewrite the PNG at ``path`` with image data that is not zlib: headers and checksums pass the
    folder scan (PIL's ``verify``), decoding fails while training."""
    data, out, pos = path.read_bytes(), path.read_bytes()[:8], 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = b"not a zlib stream" * 4 if kind == b"IDAT" else data[pos + 8:pos + 8 + length]
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    path.write_bytes(out)


@vision_test
def test_a_bad_image_on_two_workers_is_the_message_of_one_process(tmp_path: Path) -> None:
    root = write_shapes_folder(tmp_path / "shapes", per_class=10)
    common = [*IMAGES, f"data.root={root}", "data.batch_size=8", "trainer.max_epochs=1"]
    # The scan finds it: exit 2 and nothing launched (one process: tests/e2e/test_image_folder_run.py's bad input)
    (root / "square" / "square_0003.png").write_bytes(b"not an image")
    rc, _, err = run([*MODULE, *DDP, *common], tmp_path / "ddp")
    assert rc == 2, err
    assert "data.root: ImageFolderData: root cannot read the image " in err and "square_0003.png" in err, err
    assert "Traceback" not in err
    assert not [*tmp_path.rglob("resolved_config.yaml"), *tmp_path.rglob("*.ckpt")]  # no worker, no training
    write_shapes_folder(root, per_class=10)
    broken = root / "circle" / "circle_0005.png"
    _undecodable_png(broken)  # passes the scan; the rank that loads it fails: exit 1 naming rank and file
    for cwd, extra, who in ((tmp_path / "one2", [], "run failed on rank 0"), (tmp_path / "ddp2", DDP, "worker rank ")):
        rc, _, err = run([*MODULE, *extra, *common], cwd)
        assert rc == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: {who}") and f"cannot read the image '{broken}'" in last, err
        assert results(only_run_dir(cwd))["status"] == "failed"
