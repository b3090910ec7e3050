"""The executor through its Python API: limits, overfitting, precision, accumulation, clipping."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch

from declarative_train import Event, Executor, SchedulerSpec
from declarative_train.data import Digits
from declarative_train.metrics import Accuracy


class Recorder:
    """Counts events and remembers batch sizes seen by the task."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def attach(self, executor: Executor) -> None:
        for event in Event:
            executor.events.on(event, lambda ex, e=event: self.events.append(e.value))

    def state_dict(self) -> dict[str, Any]:
        return {}


def test_fit_and_test_through_the_python_api(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=8, metrics={"acc": Accuracy(task="multiclass", num_classes=10)})
    ex.fit()
    results = ex.test(ckpt_path=None)
    assert results["test/acc"] > 0.93
    assert ex.state.epoch == 8 and ex.state.global_step == 8 * 20


def test_overfit_one_batch_drives_loss_near_zero(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=150, overfit_batches=1, lr=1e-2)
    ex.fit()
    assert ex.state.num_train_batches == 1
    assert ex.state.metrics["train/loss"] < 0.05
    assert ex.state.metrics["val/loss"] < 0.05  # validation runs on the same batch


def test_overfit_batches_are_the_same_every_epoch(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=1, overfit_batches=2)
    ex.setup()
    first = [batch[1].clone() for batch, _ in zip(ex._train_loader, range(2))]
    second = [batch[1].clone() for batch, _ in zip(ex._train_loader, range(2))]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_fast_dev_run_runs_one_batch_of_each_stage(make_executor: Callable[..., Executor]) -> None:
    seen: dict[str, int] = {"train": 0, "val": 0, "test": 0}
    ex = make_executor(fast_dev_run=True, max_epochs=5)
    task = ex.task
    original_val = task.validation_step

    def counting_train(batch: Any, idx: int) -> torch.Tensor:
        seen["train"] += 1
        return type(task).training_step(task, batch, idx)

    def counting_val(batch: Any, idx: int) -> Any:
        seen["test" if ex.state.stage == "test" else "val"] += 1
        return original_val(batch, idx)

    task.training_step = counting_train  # type: ignore[method-assign]
    task.validation_step = counting_val  # type: ignore[method-assign]
    ex.fit()
    ex.test()
    assert seen == {"train": 1, "val": 1, "test": 1}
    assert ex.state.global_step == 1


@pytest.mark.parametrize("mode", ["32", "64", "16-mixed", "bf16-mixed", "bf16-true"])
def test_each_precision_trains_on_cpu(make_executor: Callable[..., Executor], mode: str) -> None:
    ex = make_executor(max_epochs=3, precision=mode, lr=1e-2)
    ex.fit()
    dtype = {"64": torch.float64, "bf16-true": torch.bfloat16}.get(mode, torch.float32)
    assert next(ex.task.parameters()).dtype == dtype
    assert ex.state.metrics["val/loss"] < 0.6, ex.state.metrics
    if mode == "16-mixed":
        assert ex.precision.scaler is not None and ex.precision.scaler.get_scale() > 0


def test_limits_count_or_fraction(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=1, limit_train_batches=3, limit_val_batches=0.5)
    ex.fit()
    assert ex.state.global_step == 3
    assert ex.state.num_val_batches == 2  # 270 val samples = 5 batches; half, rounded down


def test_max_steps_stops_mid_epoch(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=10, max_steps=25)
    ex.fit()
    assert ex.state.global_step == 25
    assert "max_steps" in ex.state.stop_reason


def test_gradient_accumulation_steps_once_per_n_batches(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=1, accumulate_grad_batches=4)
    ex.fit()
    assert ex.state.global_step == 5  # 20 batches / 4


def test_accumulated_step_equals_one_big_batch(make_executor: Callable[..., Executor]) -> None:
    from declarative_train.data import Synthetic

    def one_step(batch_size: int, accumulate: int) -> list[torch.Tensor]:
        data = Synthetic(num_samples=64, num_features=8, num_classes=2, batch_size=batch_size,
                         val_fraction=0.0, test_fraction=0.0, standardize=False)
        from declarative_train import Classification
        from declarative_train.models import Linear

        torch.manual_seed(0)
        task = Classification(Linear(8, 2), torch.nn.CrossEntropyLoss())
        ex = Executor(task=task, data=data, optimizer=partial(torch.optim.SGD, lr=0.1), max_steps=1,
                      accumulate_grad_batches=accumulate, limit_train_batches=accumulate)
        ex.loaders.get = lambda split: data.dataloader(split)  # type: ignore[method-assign]  # unshuffled
        ex.fit()
        return [p.detach().clone() for p in task.parameters()]

    for a, b in zip(one_step(32, 2), one_step(64, 1)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping(make_executor: Callable[..., Executor], algorithm: str) -> None:
    ex = make_executor(max_steps=1, gradient_clip_val=1e-3, gradient_clip_algorithm=algorithm)
    grads: list[torch.Tensor] = []
    original = ex.accelerator.optimizer_step

    def record(optimizer: torch.optim.Optimizer) -> None:
        grads.extend(p.grad.detach().clone() for g in optimizer.param_groups for p in g["params"])
        original(optimizer)

    ex.accelerator.optimizer_step = record  # type: ignore[method-assign]
    ex.fit()
    if algorithm == "norm":
        assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= 1e-3 * 1.0001
    else:
        assert max(float(g.abs().max()) for g in grads) == pytest.approx(1e-3)  # clipped to the value


def test_val_check_interval_and_every_n_epochs(make_executor: Callable[..., Executor]) -> None:
    rec = Recorder()
    ex = make_executor(max_epochs=2, val_check_interval=0.25, callbacks=[rec])
    ex.fit()
    assert rec.events.count("eval_start") == 8  # 20 batches, every 5
    rec = Recorder()
    ex = make_executor(max_epochs=4, check_val_every_n_epoch=2, callbacks=[rec])
    ex.fit()
    assert rec.events.count("eval_start") == 2
    rec = Recorder()
    ex = make_executor(max_epochs=1, val_check_interval=7, callbacks=[rec])
    ex.fit()
    assert rec.events.count("eval_start") == 2  # after batch 7 and 14


def test_events_fire_in_order(make_executor: Callable[..., Executor]) -> None:
    rec = Recorder()
    ex = make_executor(max_epochs=1, limit_train_batches=2, callbacks=[rec])
    ex.fit()
    # Checkpoint points follow everything their step or epoch does (validation included).
    assert rec.events == ["fit_start", "epoch_start", "step_end", "step_checkpoint", "step_end", "eval_start",
                          "eval_end", "step_checkpoint", "epoch_end", "epoch_checkpoint", "fit_end"]


@pytest.mark.parametrize("interval,expected_steps", [("epoch", 3), ("step", 60)])
def test_scheduler_interval(make_executor: Callable[..., Executor], interval: str, expected_steps: int) -> None:
    factory = partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    ex = make_executor(max_epochs=3, scheduler=SchedulerSpec(factory, interval=interval), lr=1.0)
    ex.fit()
    assert ex.scheduler.last_epoch == expected_steps
    assert ex.optimizer.param_groups[0]["lr"] == pytest.approx(0.5**expected_steps)


def test_plateau_scheduler_reads_its_monitor(make_executor: Callable[..., Executor]) -> None:
    factory = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max", patience=0, factor=0.1)
    ex = make_executor(max_epochs=3, limit_train_batches=1, lr=1e-4,
                       scheduler=SchedulerSpec(factory, monitor="val/loss"))
    ex.fit()
    assert ex.optimizer.param_groups[0]["lr"] == pytest.approx(1e-6)  # falling val/loss never improves in max mode


def test_one_cycle_gets_total_steps(make_executor: Callable[..., Executor]) -> None:
    factory = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01)
    ex = make_executor(max_epochs=2, scheduler=SchedulerSpec(factory, interval="step"))
    ex.fit()  # OneCycleLR raises if stepped past total_steps
    assert ex.scheduler.total_steps == 40


def test_predict_returns_outputs_per_batch(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=1)
    outputs = ex.predict()
    assert sum(len(o) for o in outputs) == 270 and outputs[0].shape[1] == 10


@pytest.mark.parametrize("overfit", [0, 2])
def test_predict_serves_the_train_split_in_order_every_row_once(make_executor: Callable[..., Executor],
                                                                  overfit: int) -> None:
    # batch 50 and drop_last: the train loader shuffles and drops the last 7 of the 1257 rows
    ex = make_executor(max_epochs=1, limit_train_batches=3, overfit_batches=overfit,
                       data=Digits(batch_size=50, drop_last=True))
    ex.fit()
    features = ex.data.datasets["train"].tensors[0]
    assert len(features) % 50 and ex.loaders.get("train").batch_sampler.drop_last
    predicted = torch.cat(ex.predict("train"))
    with torch.no_grad():
        expected = ex.task(features)  # one forward pass over the train tensors, in order
    assert predicted.shape == expected.shape and torch.allclose(predicted, expected, atol=1e-6)
    val = torch.cat(ex.predict("val"))  # overfitting validates on train batches; predict("val") is the val split
    with torch.no_grad():
        assert torch.allclose(val, ex.task(ex.data.datasets["val"].tensors[0]), atol=1e-6)
    first = next(iter(ex.loaders.get("train")))[0]  # training still takes shuffled batches (unless overfitting)
    assert torch.equal(first, features[:50]) == bool(overfit)


def test_metric_inputs_are_checked_on_the_first_batch_and_checks_come_back(make_executor: Callable[..., Executor]) -> None:
    ex = make_executor(max_epochs=1, metrics={"acc": Accuracy(task="multiclass", num_classes=10)})
    ex.validate()
    assert all(m.validate_args for m in ex._evaluator.metrics["val"].values())
    bad = make_executor(max_epochs=1, metrics={"acc": Accuracy(task="multiclass", num_classes=5)})
    with pytest.raises(ValueError, match="Accuracy"):
        bad.validate()
