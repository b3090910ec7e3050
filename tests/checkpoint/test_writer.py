"""Background checkpoint writes: the content is fixed at the save, files appear whole, errors surface."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from declarative_train import Executor
from declarative_train.callbacks import ModelCheckpoint
from declarative_train.checkpoint import file as ckpt_file
from declarative_train.checkpoint.writer import CheckpointWriter, available_memory, snapshot
from declarative_train.errors import CheckpointError
from declarative_train.utils.tree import tensor_bytes


@pytest.mark.parametrize("limit", [None, 0], ids=["copied in memory", "serialised on the caller"])
def test_the_content_is_the_state_at_the_call(tmp_path: Path, limit: int | None) -> None:
    writer = CheckpointWriter(snapshot_limit_bytes=limit)
    weights = torch.zeros(1000)
    table = {"a": 1}
    writer.write({"w": weights, "table": table}, [tmp_path / "a.ckpt", tmp_path / "last.ckpt"], background=True)
    weights += 1  # training goes on while the file is written
    table["b"] = 2
    writer.wait()
    assert not writer.busy
    for name in ("a.ckpt", "last.ckpt"):
        saved = ckpt_file.read(tmp_path / name)
        assert torch.equal(saved["w"], torch.zeros(1000)) and saved["table"] == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt", "last.ckpt"]


def test_a_snapshot_keeps_shared_tensors_shared_and_state_dict_metadata() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    state = net.state_dict()
    state["tied"] = state["0.weight"]
    copied = snapshot({"state_dict": state, "steps": [1, (2, 3)]})
    assert copied["state_dict"]["tied"] is copied["state_dict"]["0.weight"]
    assert copied["state_dict"]["0.weight"] is not state["0.weight"]
    assert copied["state_dict"]._metadata == state._metadata  # type: ignore[attr-defined]
    assert copied["steps"] == [1, (2, 3)]
    assert tensor_bytes(state) == sum(t.nelement() * t.element_size() for k, t in state.items() if k != "tied")


def test_available_memory_is_plausible() -> None:
    assert 0 < available_memory() < 1 << 50


def test_then_runs_after_the_files_are_in_place(tmp_path: Path) -> None:
    seen: list[bool] = []
    writer = CheckpointWriter()
    writer.write({"x": 1}, [tmp_path / "last.ckpt"], background=True,
                 then=lambda: seen.append((tmp_path / "last.ckpt").is_file()))
    writer.wait()
    assert seen == [True]
    writer.close()


def _failing_targets(tmp_path: Path) -> list[Path]:
    """A target that a folder occupies: serialising works, the rename into place fails."""
    (tmp_path / "best.ckpt").mkdir()
    return [tmp_path / "best.ckpt"]


def test_a_failed_background_write_is_raised_at_the_next_write_and_keeps_old_files(tmp_path: Path) -> None:
    writer = CheckpointWriter()
    writer.write({"v": 1}, [tmp_path / "last.ckpt"])
    called: list[str] = []
    writer.write({"v": 2}, _failing_targets(tmp_path), background=True, then=lambda: called.append("then"),
                 on_failure=lambda: called.append("on_failure"))
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*best.ckpt.*unchanged"):
        writer.write({"v": 3}, [tmp_path / "last.ckpt"], background=True)
    assert called == ["on_failure"]
    assert ckpt_file.read(tmp_path / "last.ckpt") == {"v": 1}
    assert ckpt_file.stale_temp_files(tmp_path) == []
    writer.wait()  # the error was handed over once
    writer.close()


def test_wait_quietly_logs_instead_of_raising(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = CheckpointWriter()
    writer.write({"v": 2}, _failing_targets(tmp_path), background=True)
    writer.wait_quietly()
    assert "cannot write checkpoint" in caplog.text
    writer.close(quietly=True)


def test_fit_ends_with_every_file_in_place(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor=None, save_top_k=2, every_n_train_steps=1,
                            every_n_epochs=0)
    ex = make_executor(callbacks={"model_checkpoint": saver}, max_epochs=1, limit_train_batches=5)
    earlier = set(threading.enumerate())  # writer threads other tests left to the garbage collector
    ex.fit()
    assert not ex.checkpoint_writer.busy
    started = [t for t in threading.enumerate() if t not in earlier and t.name.startswith("checkpoint-writer")]
    assert not started  # fit's writer thread stopped at its end
    # Files that left the top 2 were deleted only after their replacement was in place.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0-step=4.ckpt", "epoch=0-step=5.ckpt", "last.ckpt"]
    assert ckpt_file.read(tmp_path / "last.ckpt")["loop"]["global_step"] == 5


def test_fit_raises_a_failed_background_write(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    (tmp_path / "last.ckpt").mkdir()  # in the way of the rename, which runs in the background
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor=None, save_top_k=0, every_n_epochs=1)
    ex = make_executor(callbacks={"model_checkpoint": saver}, max_epochs=1, limit_train_batches=2)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*last.ckpt"):
        ex.fit()
    assert ckpt_file.stale_temp_files(tmp_path) == []
