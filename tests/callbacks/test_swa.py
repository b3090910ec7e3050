"""SWA: the average of the SWA epochs, SWALR's rates, BatchNorm statistics, the tested model, resume."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig
from torch.optim import swa_utils

from declarative_train import Classification, Event, Executor, SchedulerSpec
from declarative_train.build import check_components
from declarative_train.callbacks import ModelCheckpoint, StochasticWeightAveraging
from declarative_train.errors import ArgumentError, ConfigError
from declarative_train.metrics import Accuracy
from tests.conftest import CLIResult
from tests.engine.test_resume_in_process import SnapshotAt

SHORT: dict[str, Any] = {"max_epochs": 4, "limit_train_batches": 5, "limit_val_batches": 2}


class EpochRecorder:
    """Parameters at every epoch end (before SWA averages them) and the learning rate of every epoch."""

    def __init__(self) -> None:
        self.params: list[list[torch.Tensor]] = []
        self.lrs: list[float] = []
        self.step_lrs: list[float] = []

    def attach(self, executor: Executor) -> None:
        executor.events.on(Event.EPOCH_END, self._params)
        executor.events.on(Event.STEP_END, self._lr)

    def _params(self, executor: Executor) -> None:
        self.params.append([p.detach().clone() for p in executor.task.parameters()])

    def _lr(self, executor: Executor) -> None:
        assert executor.optimizer is not None
        self.step_lrs.append(executor.optimizer.param_groups[0]["lr"])  # the rate this step used
        if executor.state.batch_idx == 1:
            self.lrs.append(self.step_lrs[-1])


def _bn_task() -> Classification:
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    return Classification(net, torch.nn.CrossEntropyLoss())


def _fit(make: Callable[..., Executor], swa: StochasticWeightAveraging, *extra: Any, ckpt: Path | None = None,
         **settings: Any) -> tuple[Executor, EpochRecorder]:
    recorder = EpochRecorder()
    callbacks = {"recorder": recorder, "swa": swa, **{f"extra{i}": cb for i, cb in enumerate(extra)}}
    torch.manual_seed(0)
    ex = make(task=_bn_task(), callbacks=callbacks, metrics={"acc": Accuracy(task="multiclass", num_classes=10)},
              **{**SHORT, **settings})
    ex.fit(ckpt_path=str(ckpt) if ckpt else None)
    return ex, recorder


def test_the_model_ends_with_the_average_of_the_swa_epochs(make_executor: Callable[..., Executor]) -> None:
    swa = StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=2, annealing_epochs=0)
    ex, recorder = _fit(make_executor, swa)
    assert swa.averaged is not None and swa.n_averaged == 3  # epochs 2, 3, 4 (1-based)
    expected = [torch.stack(ps).mean(0) for ps in zip(*recorder.params[1:])]
    for got, want in zip(ex.task.parameters(), expected, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-6, atol=1e-7)
    for got, want in zip(ex.task.parameters(), swa.averaged, strict=True):
        assert torch.equal(got, want)


def test_swalr_sets_the_rates_over_the_runs_own_scheduler(make_executor: Callable[..., Executor]) -> None:
    step_lr = SchedulerSpec(partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.9), interval="step")
    swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=0.5, annealing_epochs=2, annealing_strategy="linear")
    _, recorder = _fit(make_executor, swa, scheduler=step_lr)
    assert recorder.lrs[0] == pytest.approx(3e-3)
    # swa_epoch_start=0.5 of 4 epochs: from epoch 2 (1-based). Its rate is where the StepLR left it,
    # and stays there for the whole epoch (the StepLR no longer sets it), then anneals linearly
    # to swa_lrs over 2 epochs.
    start = 3e-3 * 0.9**5
    assert recorder.lrs[1] == pytest.approx(start)
    assert recorder.step_lrs[5:10] == [recorder.lrs[1]] * 5
    assert recorder.lrs[2] == pytest.approx(start * 0.5 + 0.05 * 0.5)
    assert recorder.lrs[3] == pytest.approx(0.05)


def test_batch_norm_statistics_are_recomputed_for_the_average(make_executor: Callable[..., Executor]) -> None:
    ex, _ = _fit(make_executor, StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=3))
    by_hand = copy.deepcopy(ex.task)
    swa_utils.update_bn([x for x, _ in ex.batches("train")], by_hand)
    norm, expected = ex.task.net[1], by_hand.net[1]
    torch.testing.assert_close(norm.running_mean, expected.running_mean)
    torch.testing.assert_close(norm.running_var, expected.running_var)
    assert int(norm.num_batches_tracked) == 5


def test_the_test_after_fit_uses_the_averaged_model(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=str(tmp_path), monitor="val/acc", write_in_background=False)
    swa = StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=2)
    ex, _ = _fit(make_executor, swa, saver)
    averaged = [p.detach().clone() for p in ex.task.parameters()]
    ex.test("best")
    assert ex.tested_ckpt_path is None and saver.best_model_path
    assert all(torch.equal(a, p) for a, p in zip(averaged, ex.task.parameters()))
    # The checkpoints hold the training weights and the average in the callback's state.
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["callbacks"]["swa"]["n_averaged"] == 3


@pytest.mark.parametrize("where", [{"step": 17}, {"epoch": 1}], ids=["mid-epoch in SWA", "before SWA starts"])
def test_resume_ends_bit_identical(make_executor: Callable[..., Executor], tmp_path: Path, where: dict[str, int]) -> None:
    ckpt = tmp_path / "snapshot.ckpt"
    step_lr = SchedulerSpec(partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.95), interval="step")
    options = {"swa_lrs": 0.02, "swa_epoch_start": 3, "annealing_epochs": 2}
    reference = StochasticWeightAveraging(**options)
    ref_ex, _ = _fit(make_executor, reference, SnapshotAt(ckpt, **where), scheduler=step_lr, max_epochs=5)
    resumed = StochasticWeightAveraging(**options)
    ex, _ = _fit(make_executor, resumed, ckpt=ckpt, scheduler=step_lr, max_epochs=5)
    assert reference.averaged is not None and resumed.averaged is not None
    assert resumed.n_averaged == reference.n_averaged == 3
    for a, b in zip(reference.averaged, resumed.averaged, strict=True):
        assert torch.equal(a, b)
    for (name, a), b in zip(ref_ex.task.state_dict().items(), ex.task.state_dict().values()):
        assert torch.equal(a, b), name
    assert ex.state.metrics == ref_ex.state.metrics


def test_a_start_beyond_max_epochs_is_refused(make_executor: Callable[..., Executor]) -> None:
    with pytest.raises(ArgumentError, match="swa_epoch_start is epoch 5, beyond max_epochs=4"):
        StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=5, max_epochs=4)
    with pytest.raises(ArgumentError, match="beyond max_epochs=4"):  # the Python API, without max_epochs
        make_executor(callbacks={"swa": StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=5)}, max_epochs=4).fit()
    for bad in ({"swa_epoch_start": 0}, {"swa_epoch_start": 1.5}, {"swa_lrs": -1.0}, {"annealing_strategy": "exp"}):
        with pytest.raises(ArgumentError):
            StochasticWeightAveraging(**{"swa_lrs": 0.1, **bad})


def test_a_start_beyond_max_epochs_is_a_configuration_error(compose_cfg: Callable[..., DictConfig]) -> None:
    check_components(compose_cfg(["callbacks=[default,swa]"]))
    cfg = compose_cfg(["callbacks=[default,swa]", "callbacks.swa.swa_epoch_start=12", "trainer.max_epochs=10"])
    with pytest.raises(ConfigError, match=r"callbacks\.swa\.swa_epoch_start: .*beyond max_epochs=10"):
        check_components(cfg)


def test_dtrain_exits_2_on_a_start_beyond_max_epochs(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("callbacks=[default,swa]", "callbacks.swa.swa_epoch_start=12", "trainer.max_epochs=10")
    assert result.returncode == 2, result.stderr
    assert "callbacks.swa.swa_epoch_start" in result.stderr and "Traceback" not in result.stderr
    for run_dir in result.run_dirs():
        assert not (run_dir / "results.json").exists() and not (run_dir / "checkpoints").exists()
