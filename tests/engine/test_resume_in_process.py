"""Exact resume through the Python API: any checkpoint point, accumulation, schedulers, dropout."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train import Classification, Event, Executor, SchedulerSpec
from declarative_train.data.resumable import ResumableSampler
from declarative_train.errors import CheckpointError
from declarative_train.models import MLP


class SnapshotAt:
    """Saves a checkpoint at one checkpoint point (a step, or the end of an epoch)."""

    def __init__(self, path: Path, step: int | None = None, epoch: int | None = None) -> None:
        self.path, self.step, self.epoch = path, step, epoch

    def attach(self, executor: Executor) -> None:
        if self.step is not None:
            executor.events.on(Event.STEP_CHECKPOINT, self._save, once=self.step)
        if self.epoch is not None:
            executor.events.on(Event.EPOCH_CHECKPOINT, self._save, once=self.epoch)

    def _save(self, executor: Executor) -> None:
        executor.save_checkpoint(str(self.path))


class CountingDataset(torch.utils.data.Dataset):
    """Counts the samples read."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> Any:
        self.reads += 1
        return self.inner[index]


def _dropout_task() -> Classification:
    return Classification(MLP(64, [64], 10, dropout=0.2), torch.nn.CrossEntropyLoss())


def _run(make: Callable[..., Executor], callbacks: list[Any], ckpt: Path | None = None, **kwargs: Any) -> Executor:
    torch.manual_seed(0)
    ex = make(task=_dropout_task(), callbacks=callbacks, **kwargs)
    ex.fit(ckpt_path=str(ckpt) if ckpt else None)
    return ex


def _same_params(a: Executor, b: Executor) -> None:
    for (name, x), (_, y) in zip(a.task.state_dict().items(), b.task.state_dict().items()):
        assert torch.equal(x, y), name


CASES = {
    "mid-epoch step": ({"step": 13}, {}),
    "end of epoch": ({"epoch": 1}, {}),
    "accumulation and a step scheduler": (
        {"step": 4},
        {"accumulate_grad_batches": 3, "scheduler": SchedulerSpec(partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.7), interval="step")},
    ),
    "mid-epoch validation": ({"step": 10}, {"val_check_interval": 0.5}),
}


@pytest.mark.parametrize("case", CASES)
def test_resume_from_any_checkpoint_point_is_bit_identical(make_executor: Callable[..., Executor], tmp_path: Path, case: str) -> None:
    where, settings = CASES[case]
    ckpt = tmp_path / "snapshot.ckpt"
    reference = _run(make_executor, [SnapshotAt(ckpt, **where)], max_epochs=3, **settings)
    resumed = _run(make_executor, [], ckpt, max_epochs=3, **settings)
    _same_params(reference, resumed)
    assert resumed.state.global_step == reference.state.global_step
    assert resumed.state.metrics == reference.state.metrics  # epoch train/loss mean included


def test_resumed_epoch_skips_consumed_batches_without_loading_them(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    ckpt = tmp_path / "snapshot.ckpt"
    _run(make_executor, [SnapshotAt(ckpt, step=27)], max_epochs=2)
    ex = make_executor(task=_dropout_task(), max_epochs=2)
    ex.data.setup()
    counting = CountingDataset(ex.data.datasets["train"])
    ex.data.datasets["train"] = counting
    ex.fit(ckpt_path=str(ckpt))
    assert counting.reads == len(counting) - 7 * 64  # epoch 1 resumed after 7 of its 20 batches


def test_sampler_order_depends_on_seed_and_epoch_only() -> None:
    a = ResumableSampler(100, shuffle=True, seed=3)
    a.start_epoch(2)
    order = list(a)
    b = ResumableSampler(100, shuffle=True, seed=3)
    b.batch_size = 10
    b.start_epoch(2, skip_batches=3)
    assert list(b) == order[30:]
    assert list(b) == order  # the skip applies to one pass
    b.start_epoch(2)
    assert list(b) == order
    b.start_epoch(3)
    assert list(b) != order
    inner = ResumableSampler(10, shuffle=False, seed=0, inner=range(10, 20))  # type: ignore[arg-type]
    inner.start_epoch(0, skip_batches=4)
    assert list(inner) == list(range(14, 20))


def test_a_checkpoint_for_another_model_changes_nothing(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    ckpt = tmp_path / "snapshot.ckpt"
    _run(make_executor, [SnapshotAt(ckpt, step=3)], max_epochs=1)
    other = make_executor(task=Classification(MLP(64, [32], 10, dropout=0.2), torch.nn.CrossEntropyLoss()), max_epochs=1)
    other.setup()
    before = {k: v.clone() for k, v in other.task.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"snapshot.ckpt does not fit the model: shape mismatches \[net.0.bias: checkpoint \(64,\) vs model \(32,\), net.0.weight"):
        other.load_checkpoint(str(ckpt))
    assert all(torch.equal(before[k], v) for k, v in other.task.state_dict().items())
    assert other.state.global_step == 0


def test_a_checkpoint_for_another_optimizer_is_refused(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    ckpt = tmp_path / "snapshot.ckpt"
    _run(make_executor, [SnapshotAt(ckpt, step=3)], max_epochs=1)
    sgd = Executor(task=_dropout_task(), data=make_executor().data, optimizer=partial(torch.optim.SGD, lr=0.1))
    sgd.setup()
    with pytest.raises(CheckpointError, match="saved with Adam, this run uses SGD"):
        sgd.load_checkpoint(str(ckpt))


def test_weights_only_checkpoints_cannot_be_resumed_from(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    from declarative_train.checkpoint import file as ckpt_file

    ex = make_executor(max_epochs=1)
    ex.setup()
    state = ex.training_state.collect()
    del state["optimizer"]
    ckpt_file.write(state, [tmp_path / "weights.ckpt"])
    with pytest.raises(CheckpointError, match="cannot be resumed from: it lacks optimizer"):
        ex.load_checkpoint(str(tmp_path / "weights.ckpt"))
    assert ex.validate(str(tmp_path / "weights.ckpt"))  # weights alone still evaluate


def test_a_candidate_saved_after_a_mid_epoch_validation_resumes_exactly(
        make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    from declarative_train.callbacks import ModelCheckpoint
    from declarative_train.metrics import Accuracy

    def metrics() -> dict[str, Any]:
        return {"acc": Accuracy(task="multiclass", num_classes=10)}

    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", save_top_k=-1)
    reference = _run(make_executor, {"model_checkpoint": saver}, max_epochs=2, val_check_interval=0.5,
                     metrics=metrics())
    mid_epoch = tmp_path / "epoch=0-step=10.ckpt"  # after the validation half-way through epoch 1
    assert mid_epoch.is_file()
    resumed = _run(make_executor, [], mid_epoch, max_epochs=2, val_check_interval=0.5, metrics=metrics())
    _same_params(reference, resumed)
    assert resumed.state.global_step == reference.state.global_step == 40
