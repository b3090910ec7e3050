"""What subscribers get: removable subscriptions, the checkpoint callback, metric directions,
callback state keyed by name (a rename warns instead of silently losing state)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from declarative_train import Event, Executor, TrainingContext
from declarative_train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from declarative_train.metrics import Accuracy, MeanSquaredError


def test_a_subscription_can_be_removed(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=3, limit_train_batches=2, limit_val_batches=1)
    seen: list[int] = []
    subscription = ex.events.on(Event.EPOCH_END, lambda ctx: seen.append(ctx.state.epoch))

    def stop_listening(ctx: TrainingContext) -> None:
        if ctx.state.epoch == 1:
            subscription.remove()

    ex.events.on(Event.EPOCH_START, stop_listening)
    ex.fit()
    assert seen == [0]
    subscription.remove()  # a second removal does nothing


class CountSteps(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def attach(self, context: TrainingContext) -> None:
        self.listen(context, Event.STEP_END, self._count)

    def _count(self, context: TrainingContext) -> None:
        self.steps += 1
        if self.steps == 3:
            self.detach()

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps = state["steps"]


def test_a_callback_detaches_its_own_subscriptions(make_executor: Callable[..., Executor]) -> None:
    counter = CountSteps()
    make_executor(max_epochs=1, limit_train_batches=5, callbacks={"count": counter}).fit()
    assert counter.steps == 3


def test_modes_default_from_the_metric_direction(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    savers = {"acc": ModelCheckpoint(dirpath=str(tmp_path / "a"), monitor="val/acc"),
              "mse": ModelCheckpoint(dirpath=str(tmp_path / "m"), monitor="val/mse"),
              "loss": EarlyStopping(monitor="val/loss"), "given": EarlyStopping(monitor="val/acc", mode="min")}
    ex = make_executor(max_epochs=1, limit_train_batches=2, callbacks=savers,
                       metrics={"acc": Accuracy(task="multiclass", num_classes=10), "mse": MeanSquaredError()})
    ex.setup()
    assert [cb.mode for cb in savers.values()] == ["max", "min", "min", "min"]
    assert ex.higher_is_better("test/acc") is True and ex.higher_is_better("train/loss") is False
    assert ex.higher_is_better("val/unknown") is None


def test_the_checkpoint_callback_is_found_by_what_it_provides(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path))
    ex = make_executor(max_epochs=1, limit_train_batches=2, callbacks={"count": CountSteps(), "ckpt": saver})
    assert ex.checkpoint_callback is saver
    ex.fit()
    assert ex.best_model_path == saver.best_model_path != ""
    assert make_executor(callbacks={"count": CountSteps()}).checkpoint_callback is None


def test_a_renamed_callback_is_named_in_a_warning(make_executor: Callable[..., Executor], tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    first = make_executor(max_epochs=1, limit_train_batches=4, callbacks={"steps": CountSteps()})
    first.fit()
    first.save_checkpoint(str(tmp_path / "last.ckpt"))
    renamed = CountSteps()
    second = make_executor(max_epochs=1, limit_train_batches=4, callbacks={"step_counter": renamed})
    with caplog.at_level(logging.WARNING):
        second.load_checkpoint(str(tmp_path / "last.ckpt"))
    assert renamed.steps == 0
    assert "holds the state of callback 'steps' (CountSteps), which this run does not have" in caplog.text
    assert "this run's 'step_counter' is a CountSteps too" in caplog.text
    same_name = CountSteps()
    make_executor(callbacks={"steps": same_name}).load_checkpoint(str(tmp_path / "last.ckpt"))
    assert same_name.steps == 3
