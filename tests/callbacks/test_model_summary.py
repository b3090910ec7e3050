"""ModelSummary: counts, shapes from the first step, memory, the file, and a run left unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from declarative_train import Classification, Executor
from declarative_train.callbacks import Callback, ModelCheckpoint, ModelSummary
from declarative_train.callbacks.model_summary import SUMMARY_FILE, summarize
from declarative_train.engine import Event, TrainingContext
from declarative_train.errors import ArgumentError
from declarative_train.models import MLP


def _task(frozen: bool = False) -> Classification:
    torch.manual_seed(0)
    task = Classification(MLP(64, [32], 10), nn.CrossEntropyLoss())
    if frozen:
        task.net[0].requires_grad_(False)
    return task


def test_counts_depth_and_memory() -> None:
    task = _task(frozen=True)
    table = summarize(task, max_depth=2)
    assert [(r.name, r.kind, r.params, r.trainable) for r in table.rows] == [
        ("net", "MLP", 64 * 32 + 32 + 32 * 10 + 10, 32 * 10 + 10),
        ("net.0", "Linear", 64 * 32 + 32, 0),
        ("net.1", "ReLU", 0, 0),
        ("net.2", "Linear", 32 * 10 + 10, 32 * 10 + 10),
        ("loss", "CrossEntropyLoss", 0, 0),
    ]
    assert (table.total_params, table.trainable_params) == (2410, 330)
    assert (table.param_bytes, table.grad_bytes, table.optimizer_bytes) == (2410 * 4, 330 * 4, None)
    text = table.render()
    assert "330 trainable parameters" in text and "2.1 K non-trainable parameters" in text
    assert "optimizer state not allocated until the first step" in text


def test_optimizer_state_is_counted_once_allocated() -> None:
    task = _task()
    optimizer = torch.optim.Adam(task.parameters())
    task.loss(task(torch.randn(4, 64)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.step()
    tensors = len(list(task.parameters()))
    # Adam: exp_avg and exp_avg_sq per parameter (float32), plus a one-element float32 step each.
    assert summarize(task, 1, optimizer).optimizer_bytes == 2 * 2410 * 4 + tensors * 4


def test_the_run_logs_and_writes_the_summary_with_output_shapes(make_executor: Callable[..., Executor],
                                                                tmp_path: Path) -> None:
    ex = make_executor(task=_task(), callbacks={"model_summary": ModelSummary(max_depth=2, save_dir=str(tmp_path))},
                       max_epochs=1, limit_train_batches=3, limit_val_batches=0)
    ex.fit()
    text = (tmp_path / SUMMARY_FILE).read_text()
    lines = {line.split("|")[1].strip(): line.split("|")[-1].strip() for line in text.splitlines() if line[:1].isdigit() and " | " in line}
    assert lines == {"net": "[64, 10]", "net.0": "[64, 32]", "net.1": "[64, 32]", "net.2": "[64, 10]", "loss": "[]"}
    assert "optimizer state 0.018 MB" in text  # (2 x 2410 + 4 step counters) float32 = 19,296 bytes
    assert not any(module._forward_hooks for module in ex.task.modules())  # the hooks removed themselves


def test_the_summary_leaves_the_run_bit_identical(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    runs = []
    for callbacks in ({}, {"model_summary": ModelSummary(max_depth=3, save_dir=str(tmp_path))}):
        ex = make_executor(task=_task(), callbacks=callbacks, max_epochs=2, limit_train_batches=4)
        ex.fit()
        runs.append({k: v.clone() for k, v in ex.task.state_dict().items()})
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_fast_dev_run_logs_but_writes_nothing(make_executor: Callable[..., Executor], tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    ex = make_executor(task=_task(), callbacks={"model_summary": ModelSummary(save_dir=str(tmp_path))}, fast_dev_run=True)
    with caplog.at_level("INFO", logger="declarative_train"):
        ex.fit()
    assert "model summary:" in caplog.text
    assert not (tmp_path / SUMMARY_FILE).exists()


@pytest.mark.parametrize("depth", [-1, 1.5, True])
def test_a_bad_depth_names_the_argument(depth: object) -> None:
    with pytest.raises(ArgumentError, match="ModelSummary: max_depth must be an int >= 0"):
        ModelSummary(max_depth=depth)  # type: ignore[arg-type]


def test_dry_run_prints_the_summary(run_cli: Callable[..., object]) -> None:
    result = run_cli("dry_run=true", "callbacks.model_summary.max_depth=2")
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert "Model summary (output shapes come with the first training step):" in out
    assert "net.0 | Linear" in out and "17.2 K parameters in all" in out


def test_a_resumed_fit_reports_after_its_own_first_step(make_executor: Callable[..., Executor], tmp_path: Path) -> None:
    first = make_executor(task=_task(), callbacks={"model_checkpoint": ModelCheckpoint(str(tmp_path / "ckpt"))},
                          max_epochs=1, limit_train_batches=3, limit_val_batches=0)
    first.fit()
    written = tmp_path / "resumed" / SUMMARY_FILE
    seen: dict[int, bool] = {}

    class Watch(Callback):
        def attach(self, context: TrainingContext) -> None:
            self.listen(context, Event.STEP_END, lambda c: seen.setdefault(c.state.global_step, written.exists()))

    resumed = make_executor(task=_task(), callbacks={"model_summary": ModelSummary(save_dir=str(written.parent)),
                                                     "watch": Watch()},
                            max_epochs=2, limit_train_batches=3, limit_val_batches=0)
    resumed.fit(ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert seen == {4: True, 5: True, 6: True}  # written at step 4, the first this process ran
    assert "| [64, 10]" in written.read_text()
