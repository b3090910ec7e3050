"""EMA: the average equals one computed by hand, evaluation and checkpoints use it, resume is exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig

from declarative_train import Event, Executor
from declarative_train.build import check_components
from declarative_train.callbacks import EMA, ModelCheckpoint
from declarative_train.callbacks.averaging import AveragedParameters
from declarative_train.config.validate import validate_config
from declarative_train.errors import ArgumentError, ConfigError
from declarative_train.metrics import Accuracy
from tests.conftest import CLIResult
from tests.engine.test_resume_in_process import SnapshotAt

#: A short run: digits, 2 epochs of 5 batches, validation after each.
SHORT: dict[str, Any] = {"max_epochs": 2, "limit_train_batches": 5, "limit_val_batches": 2}


class Recorder:
    """The parameters at the start of fit and after every optimizer step, and what each validation saw."""

    def __init__(self) -> None:
        self.steps: list[list[torch.Tensor]] = []
        self.validated: list[list[torch.Tensor]] = []

    def attach(self, executor: Executor) -> None:
        executor.events.on(Event.FIT_START, self._record)
        executor.events.on(Event.STEP_END, self._record)

    def _record(self, executor: Executor) -> None:
        self.steps.append([p.detach().clone() for p in executor.task.parameters()])


class EvalProbe:
    """The parameters a validation runs with (subscribed after the EMA, so it sees them swapped in)."""

    def __init__(self) -> None:
        self.seen: list[list[torch.Tensor]] = []

    def attach(self, executor: Executor) -> None:
        executor.events.on(Event.EVAL_START, self._record)

    def _record(self, executor: Executor) -> None:
        self.seen.append([p.detach().clone() for p in executor.task.parameters()])


def hand_ema(steps: list[list[torch.Tensor]], ema: EMA) -> list[torch.Tensor]:
    """The average over ``steps`` (start of fit, then after each step), one tensor at a time."""
    average = [t.clone() for t in steps[0]]
    update = 0
    for step, params in enumerate(steps[1:], start=1):
        if step % ema.update_every:
            continue
        average = [torch.lerp(a, p, 1.0 - ema.decay_at(update)) for a, p in zip(average, params)]
        update += 1
    return average


def _fit(make: Callable[..., Executor], ema: EMA, *extra: Any, **settings: Any) -> tuple[Executor, Recorder]:
    recorder = Recorder()
    callbacks = {"recorder": recorder, "ema": ema, **{f"extra{i}": cb for i, cb in enumerate(extra)}}
    ex = make(callbacks=callbacks, metrics={"acc": Accuracy(task="multiclass", num_classes=10)}, **{**SHORT, **settings})
    ex.fit()
    return ex, recorder


@pytest.mark.parametrize("options", [{"decay": 0.9, "warmup": False}, {"decay": 0.8, "update_every": 3}],
                         ids=["every step", "every 3 steps with warmup"])
def test_average_equals_the_hand_computation(make_executor: Callable[..., Executor], options: dict[str, Any]) -> None:
    ema = EMA(**options, use_for_eval=False)
    _, recorder = _fit(make_executor, ema)
    expected = hand_ema(recorder.steps, ema)
    assert ema.averaged is not None
    assert ema.num_updates == 10 // ema.update_every
    for got, want in zip(ema.averaged, expected, strict=True):
        assert torch.equal(got, want)
    # And the textbook formula, in float64.
    reference = [t.double() for t in recorder.steps[0]]
    for update, params in enumerate(recorder.steps[ema.update_every::ema.update_every]):
        d = ema.decay_at(update)
        reference = [d * r + (1 - d) * p.double() for r, p in zip(reference, params)]
    for got, want in zip(ema.averaged, reference, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_test_metrics_are_those_of_the_hand_computed_average(make_executor: Callable[..., Executor]) -> None:
    ema = EMA(decay=0.7)
    ex, recorder = _fit(make_executor, ema)
    results = ex.test(ckpt_path=None)  # fit ended with the average in the model
    by_hand = make_executor(metrics={"acc": Accuracy(task="multiclass", num_classes=10)}, **SHORT,
                            limit_test_batches=1.0)
    by_hand.setup()
    with torch.no_grad():
        for param, value in zip(by_hand.task.parameters(), hand_ema(recorder.steps, ema), strict=True):
            param.copy_(value)
    assert by_hand.test(ckpt_path=None) == results
    # The training weights are kept aside, not lost.
    for kept, trained in zip(ema.slots.training_values(), recorder.steps[-1], strict=True):
        assert torch.equal(kept, trained)


def test_validation_runs_with_the_average_and_training_continues_from_its_own_weights(
    make_executor: Callable[..., Executor],
) -> None:
    probe = EvalProbe()
    ex, recorder = _fit(make_executor, EMA(decay=0.5), probe)
    plain_ex, plain = _fit(make_executor, EMA(decay=0.5, use_for_eval=False))
    # Each epoch's validation saw the average of the steps so far, not the training weights.
    ema = EMA(decay=0.5)
    for epoch, seen in enumerate(probe.seen):
        expected = hand_ema(recorder.steps[: 5 * (epoch + 1) + 1], ema)
        for got, want in zip(seen, expected, strict=True):
            assert torch.equal(got, want)
    # Swapping for validation does not disturb training: the same training weights step by step.
    for a, b in zip(recorder.steps, plain.steps, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert ex.state.metrics["val/loss"] != plain_ex.state.metrics["val/loss"]


def test_checkpoints_hold_the_average_as_the_model_weights(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    ema = EMA(decay=0.6)
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", write_in_background=False)
    ex, recorder = _fit(make_executor, ema, saver)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    names = [name for name, _ in ex.task.named_parameters()]
    expected = hand_ema(recorder.steps, ema)
    for name, want, trained in zip(names, expected, recorder.steps[-1], strict=True):
        assert torch.equal(saved["state_dict"][name], want)
        assert torch.equal(saved["callbacks"]["ema"]["averaged"][name], want)
        assert torch.equal(saved["callbacks"]["ema"]["training_weights"][name], trained)
    # The best checkpoint's test uses its average.
    best = torch.load(saver.best_model_path, weights_only=True)["state_dict"]
    ex.test("best")
    for name, param in ex.task.named_parameters():
        assert torch.equal(param, best[name])


def test_without_use_for_checkpoint_files_hold_the_training_weights(
    make_executor: Callable[..., Executor], tmp_path: Path,
) -> None:
    ema = EMA(decay=0.6, use_for_checkpoint=False)
    _, recorder = _fit(make_executor, ema, ModelCheckpoint(dirpath=str(tmp_path), write_in_background=False))
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["callbacks"]["ema"]["training_weights"] is None
    for want, got in zip(recorder.steps[-1], saved["state_dict"].values()):
        assert torch.equal(got, want)


@pytest.mark.parametrize("use_for_checkpoint", [True, False])
@pytest.mark.parametrize("where", [{"step": 7}, {"epoch": 1}], ids=["mid-epoch", "epoch end"])
def test_resume_ends_bit_identical(make_executor: Callable[..., Executor], tmp_path: Path, use_for_checkpoint: bool,
                                   where: dict[str, int]) -> None:
    ckpt = tmp_path / "snapshot.ckpt"
    options = {"decay": 0.9, "update_every": 2, "warmup": True, "use_for_checkpoint": use_for_checkpoint}
    reference = EMA(**options)
    ref_ex, _ = _fit(make_executor, reference, SnapshotAt(ckpt, **where), max_epochs=3)
    resumed = EMA(**options)
    ex = make_executor(callbacks={"ema": resumed}, metrics={"acc": Accuracy(task="multiclass", num_classes=10)},
                       **{**SHORT, "max_epochs": 3})
    ex.fit(ckpt_path=str(ckpt))
    assert resumed.num_updates == reference.num_updates
    assert reference.averaged is not None and resumed.averaged is not None
    for a, b in zip(reference.averaged, resumed.averaged, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(reference.slots.training_values(), resumed.slots.training_values(), strict=True):
        assert torch.equal(a, b)
    assert ex.state.metrics == ref_ex.state.metrics
    for (name, a), b in zip(ref_ex.task.state_dict().items(), ex.task.state_dict().values()):
        assert torch.equal(a, b), name


def test_buffers_are_the_models_own() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(decay=0.5)
    slots = AveragedParameters(model)
    assert [names[0] for names in slots.names] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    ema._slots, ema.averaged = slots, [torch.zeros_like(p) for p in slots.params]
    weights = ema.checkpoint_weights(model.state_dict())
    assert weights["1.running_mean"].data_ptr() == model[1].running_mean.data_ptr()
    assert torch.equal(weights["0.weight"], torch.zeros(4, 3))


def test_tied_parameters_are_averaged_once() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight
    slots = AveragedParameters(model)
    assert slots.names == [["0.weight", "1.weight"]]
    replaced = slots.replace_in(model.state_dict(), [torch.ones(5, 3)])
    assert torch.equal(replaced["0.weight"], torch.ones(5, 3)) and torch.equal(replaced["1.weight"], torch.ones(5, 3))


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decay_outside_the_open_interval_is_refused(decay: float) -> None:
    with pytest.raises(ArgumentError, match=r"EMA: decay must be in \(0, 1\)"):
        EMA(decay=decay)


def test_a_bad_decay_is_a_configuration_error_with_its_key_path(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg(["callbacks=[default,ema]", "callbacks.ema.decay=1.0"])
    with pytest.raises(ConfigError, match=r"callbacks\.ema\.decay: EMA: decay must be in \(0, 1\)"):
        validate_config(cfg)
        check_components(cfg)
    check_components(compose_cfg(["callbacks=[default,ema]"]))
    assert list(compose_cfg(["callbacks=[default,ema]"]).callbacks)[-1] == "ema"


def test_dtrain_exits_2_on_a_bad_decay_and_writes_nothing(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("callbacks=[default,ema]", "callbacks.ema.decay=1.5")
    assert result.returncode == 2, result.stderr
    assert "callbacks.ema.decay" in result.stderr and "Traceback" not in result.stderr
    for run_dir in result.run_dirs():
        assert not (run_dir / "results.json").exists() and not (run_dir / "checkpoints").exists()
