"""Checkpoint files: atomic, sealed, and every damaged byte detected before anything loads."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from declarative_train.checkpoint import file as ckpt_file
from declarative_train.errors import CheckpointError


def _state() -> dict[str, object]:
    torch.manual_seed(0)
    return {"w": torch.randn(64, 32), "b": torch.randn(32), "loop": {"epoch": 3, "global_step": 120},
            "rng": (3, tuple(range(5)), None), "name": "model"}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "ckpts" / "last.ckpt"
    ckpt_file.write(_state(), [path])
    return path


def test_round_trip_is_an_ordinary_torch_checkpoint(saved: Path) -> None:
    loaded = ckpt_file.read(saved)
    plain = torch.load(saved, weights_only=True)  # still readable without declarative_train
    for obj in (loaded, plain):
        assert torch.equal(obj["w"], _state()["w"]) and obj["loop"] == {"epoch": 3, "global_step": 120}
    assert [p.name for p in saved.parent.iterdir()] == ["last.ckpt"]  # no temp file left


def test_several_targets_share_one_serialisation(tmp_path: Path) -> None:
    paths = [tmp_path / "epoch=1-step=9.ckpt", tmp_path / "last.ckpt"]
    ckpt_file.write(_state(), paths)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    ckpt_file.write({"other": 1}, [paths[1]])  # replacing one leaves the other intact
    assert torch.equal(ckpt_file.read(paths[0])["w"], _state()["w"])


def test_every_flipped_byte_is_detected(saved: Path) -> None:
    data = saved.read_bytes()
    rng = random.Random(0)
    # The zip headers and pickle at the start, the central directory and footer at the end, and a
    # sample of the tensor bytes (flipping every byte once passes too; it takes a minute).
    positions = sorted(set(range(0, 2000)) | set(range(len(data) - 600, len(data))) |
                       set(rng.sample(range(len(data)), 200)))
    damaged = saved.with_name("damaged.ckpt")
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << rng.randrange(8)
        damaged.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="damaged.ckpt"):
            ckpt_file.read(damaged)


def test_moved_blocks_are_detected(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[:4096], data[4096:8192] = data[4096:8192], data[:4096]  # two 4 KiB blocks swapped
    moved = saved.with_name("moved.ckpt")
    moved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="moved.ckpt is corrupt: its bytes do not match its integrity footer"):
        ckpt_file.read(moved)


def test_every_cut_is_detected(saved: Path) -> None:
    data = saved.read_bytes()
    rng = random.Random(1)
    cut = saved.with_name("cut.ckpt")
    for length in [0, 1, 21, len(data) - 1, *rng.sample(range(len(data)), 100)]:
        cut.write_bytes(data[:length])
        with pytest.raises(CheckpointError, match=r"cut.ckpt (is truncated|has no integrity footer|is corrupt)"):
            ckpt_file.read(cut)


def test_appended_bytes_and_foreign_files_are_refused(saved: Path, tmp_path: Path) -> None:
    longer = tmp_path / "longer.ckpt"
    longer.write_bytes(saved.read_bytes() + b"\0")
    plain = tmp_path / "plain.ckpt"
    torch.save(_state(), plain)
    for path in (longer, plain):
        with pytest.raises(CheckpointError, match="no integrity footer"):
            ckpt_file.read(path)
    with pytest.raises(CheckpointError, match="no such file"):
        ckpt_file.read(tmp_path / "missing.ckpt")


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    ckpt_file.write({"x": Evil()}, [path])  # sealed correctly: the content is the problem
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        ckpt_file.read(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions (the disk-full test covers the same path)")
def test_read_only_folder_gives_a_clear_error_and_keeps_the_old_file(saved: Path) -> None:
    before = saved.read_bytes()
    saved.parent.chmod(0o555)
    try:
        with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*last.ckpt: Permission denied; "
                                                  "the files already there are unchanged"):
            ckpt_file.write({"new": torch.zeros(3)}, [saved])
    finally:
        saved.parent.chmod(0o755)
    assert saved.read_bytes() == before


def test_a_folder_that_cannot_be_created_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the checkpoint folder should be")
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*not_a_folder/ckpts/last.ckpt: "):
        ckpt_file.write(_state(), [blocker / "ckpts" / "last.ckpt"])


_FULL_DISK = """
import resource, sys, torch
from declarative_train.checkpoint import file as ckpt_file
path = sys.argv[1]
ckpt_file.write({"small": torch.zeros(10)}, [path])
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # writes past 200 kB fail (EFBIG)
try:
    ckpt_file.write({"big": torch.zeros(1_000_000)}, [path])
except ckpt_file.CheckpointError as exc:
    print(exc)
"""


def test_a_full_disk_gives_a_clear_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    # A file-size limit makes the write fail part-way, as a full disk does (EFBIG, not ENOSPC:
    # filling a real file system needs root or a dedicated mount).
    path = tmp_path / "last.ckpt"
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"cannot write checkpoint {path}" in proc.stdout
    assert "the files already there are unchanged" in proc.stdout
    assert list(ckpt_file.read(path)) == ["small"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # the temp file is gone


def test_stale_temp_files_are_found(tmp_path: Path) -> None:
    (tmp_path / ".last.ckpt.0123456789ab.tmp").write_bytes(b"partial")
    (tmp_path / ".hidden").write_bytes(b"")
    assert [p.name for p in ckpt_file.stale_temp_files(tmp_path)] == [".last.ckpt.0123456789ab.tmp"]


def test_large_states_are_flushed_while_they_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[Path] = []
    real = ckpt_file._flushing_in_background

    def recording(path: Path):  # type: ignore[no-untyped-def]
        flushed.append(path)
        return real(path)

    monkeypatch.setattr(ckpt_file, "_flushing_in_background", recording)
    ckpt_file.write(_state(), [tmp_path / "small.ckpt"])
    assert flushed == []
    monkeypatch.setattr(ckpt_file, "FLUSH_EARLY_BYTES", 1000)  # _state() holds 8 kB of tensors
    ckpt_file.write(_state(), [tmp_path / "large.ckpt"])
    assert len(flushed) == 1 and torch.equal(ckpt_file.read(tmp_path / "large.ckpt")["w"], _state()["w"])
