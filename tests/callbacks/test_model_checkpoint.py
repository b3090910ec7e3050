"""ModelCheckpoint: cadence by epochs, steps and time; the top-k table across run folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train import Executor
from declarative_train.callbacks import ModelCheckpoint
from declarative_train.checkpoint import read
from declarative_train.metrics import Accuracy


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fit(make: Callable[..., Executor], saver: ModelCheckpoint, ckpt: str | None = None, **kwargs: Any) -> Executor:
    ex = make(callbacks={"model_checkpoint": saver}, metrics={"acc": Accuracy(task="multiclass", num_classes=10)},
              **{"max_epochs": 2, **kwargs})
    ex.fit(ckpt_path=ckpt)
    return ex


def test_every_n_train_steps_without_epoch_saves(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), save_top_k=-1, every_n_epochs=0, every_n_train_steps=15)
    _fit(make_executor, saver)
    assert _names(tmp_path) == ["epoch=0-step=15.ckpt", "epoch=1-step=30.ckpt", "last.ckpt"]
    assert read(str(tmp_path / "last.ckpt"))["loop"]["global_step"] == 30


def test_steps_and_epochs_together(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), save_top_k=-1, every_n_train_steps=15)
    _fit(make_executor, saver)
    assert _names(tmp_path) == ["epoch=0-step=15.ckpt", "epoch=0-step=20.ckpt", "epoch=1-step=30.ckpt",
                                "epoch=1-step=40.ckpt", "last.ckpt"]
    loop = read(str(tmp_path / "last.ckpt"))["loop"]
    assert (loop["global_step"], loop["epoch_finished"]) == (40, True)


def test_train_time_interval(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor=None, save_top_k=-1, every_n_epochs=0,
                            train_time_interval=1e-9)
    _fit(make_executor, saver, max_epochs=1, limit_train_batches=4)
    assert _names(tmp_path) == [f"epoch=0-step={s}.ckpt" for s in (1, 2, 3, 4)] + ["last.ckpt"]


def test_top_k_survives_resuming_into_another_folder(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    saver = ModelCheckpoint(dirpath=str(first), monitor="val/acc", mode="max", save_top_k=2)
    _fit(make_executor, saver, max_epochs=2)
    kept = _names(first)
    resumed = ModelCheckpoint(dirpath=str(second), monitor="val/acc", mode="max", save_top_k=2)
    _fit(make_executor, resumed, ckpt=str(first / "last.ckpt"), max_epochs=5)
    # The table went on from the first run's entries; files of the first folder are never deleted.
    assert _names(first) == kept
    assert len(resumed.best_k_models) == 2
    scores = sorted(resumed.best_k_models.values(), reverse=True)
    assert resumed.best_model_score == scores[0]
    all_scores = [read(str(p))["callbacks"]["model_checkpoint"]["best_model_score"] for p in second.glob("epoch=*")]
    assert max(all_scores) == resumed.best_model_score


def test_entries_whose_files_are_gone_are_dropped(tmp_path: Path) -> None:
    kept = tmp_path / "kept.ckpt"
    kept.write_bytes(b"x")
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", mode="max")
    saver.load_state_dict({"monitor": "val/acc", "mode": "max", "best_model_path": str(tmp_path / "gone.ckpt"),
                           "best_model_score": 0.9, "last_model_path": "",
                           "best_k_models": {str(tmp_path / "gone.ckpt"): 0.9, str(kept): 0.8}})
    assert saver.best_k_models == {str(kept): 0.8}
    assert (saver.best_model_path, saver.best_model_score) == (str(kept), 0.8)


def test_a_failed_save_leaves_the_table_as_the_disk_is(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    saver = ModelCheckpoint(dirpath=str(blocker / "ckpts"), monitor="val/acc", mode="max")
    with pytest.raises(RuntimeError, match="cannot write checkpoint"):
        _fit(make_executor, saver, max_epochs=1)
    assert saver.best_k_models == {} and saver.best_model_path == ""


def test_stale_temp_files_of_a_killed_writer_are_removed(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    (tmp_path / ".last.ckpt.0123456789ab.tmp").write_bytes(b"partial")
    _fit(make_executor, ModelCheckpoint(dirpath=str(tmp_path)), max_epochs=1, limit_train_batches=2)
    assert not list(tmp_path.glob(".*.tmp"))
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["loop"]["global_step"] == 2


class _Scores:
    """A logger that keeps every logged value by step."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int], float] = {}

    def setup(self) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.values.update({(name, step): value for name, value in metrics.items()})

    def log_text(self, tag: str, text: str) -> None: ...

    def finalize(self) -> None: ...


def test_a_candidate_after_every_validation_scored_by_it(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", save_top_k=-1)
    scores = _Scores()
    _fit(make_executor, saver, max_epochs=2, limit_train_batches=20, val_check_interval=0.25, loggers=[scores])
    files = sorted(tmp_path.glob("epoch=*.ckpt"), key=lambda p: read(str(p))["loop"]["global_step"])
    steps = [read(str(p))["loop"]["global_step"] for p in files]
    assert steps == [5, 10, 15, 20, 25, 30, 35, 40]  # 4 candidates per epoch
    for path, step in zip(files, steps):
        logged = scores.values[("val/acc", step)]
        assert read(str(path))["metrics"]["val/acc"] == logged
        assert saver.best_k_models[str(path)] == logged  # the table scores each file by its own validation


def test_no_candidate_in_epochs_without_validation(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", save_top_k=-1)
    _fit(make_executor, saver, max_epochs=4, limit_train_batches=3, check_val_every_n_epoch=2)
    assert _names(tmp_path) == ["epoch=1-step=6.ckpt", "epoch=3-step=12.ckpt", "last.ckpt"]


def test_a_validation_between_optimizer_steps_is_not_checkpointed(make_executor: Callable[..., Executor],
                                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", save_top_k=-1)
    _fit(make_executor, saver, max_epochs=1, limit_train_batches=8, accumulate_grad_batches=2, val_check_interval=3)
    # Steps after batches 2, 4, 6, 8. The validation after batch 3 falls between two steps: no
    # candidate; the one after batch 6 follows step 3 and is saved there.
    assert _names(tmp_path) == ["epoch=0-step=3.ckpt", "last.ckpt"]
    assert "validation ran between two optimizer steps" in caplog.text


def test_a_training_monitor_saves_at_epoch_ends(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="train/loss", save_top_k=-1)
    _fit(make_executor, saver, max_epochs=2, limit_train_batches=4, val_check_interval=0.5)
    assert _names(tmp_path) == ["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt", "last.ckpt"]
