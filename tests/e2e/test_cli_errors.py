"""Bad command lines exit 2 with one readable message naming the key path, and no traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import CLIResult

BAD_COMMAND_LINES = [
    # (arguments, text the message must contain)
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["trainer.max_epoch=3"], "Did you mean 'max_epochs'?"),
    (["model=mlpp"], "Did you mean 'mlp'?"),
    (["optimizer.lrr=0.1"], "Did you mean 'lr'?"),
    (["model.net._target_=declarative_train.models.Nope"], "model.net._target_"),
    (["+model.net.width=3"], "model.net.width"),
    (["data.batch_size=???"], "data.batch_size: missing mandatory value"),
    (["model.net._target_=os.system"], "outside the allowed packages"),
    (["trainer.limit_train_batches=2.5"], "trainer.limit_train_batches"),
    (["trainer.activation_checkpointing=[Linaer]"], "trainer.activation_checkpointing: no submodule of Classification is a 'Linaer'. Did you mean 'Linear'?"),
    (["precision=fp8"], "'fp8' is not a choice of group 'precision'"),
]


@pytest.mark.parametrize("args,expected", BAD_COMMAND_LINES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_command_line_exits_2_with_key_path(run_cli: Callable[..., CLIResult], args: list[str], expected: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not result.run_dirs() or not any((d / "results.json").exists() for d in result.run_dirs())


def test_several_mistakes_are_reported_in_one_message(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("trainer.max_epoch=3", "model=mlpp", "optimizer.lr=fast", "trainer.gradient_clip_algorithm=nrom")
    assert result.returncode == 2
    assert "Invalid configuration (4 problems)" in result.stderr, result.stderr
    for text in ("trainer.max_epoch", "model=mlpp", "optimizer.lr", "trainer.gradient_clip_algorithm"):
        assert text in result.stderr


def test_cfg_job_prints_the_composed_config(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("--cfg", "job", "optimizer.lr=0.003", "precision=bf16-mixed")
    assert result.returncode == 0, result.stderr
    assert "lr: 0.003" in result.stdout
    assert "mode: bf16-mixed" in result.stdout
    assert not result.run_dirs()


def test_dry_run_prints_the_object_graph_and_does_not_train(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("dry_run=true", "model=cnn")
    assert result.returncode == 0, result.stderr
    assert "task: declarative_train.tasks.Classification" in result.stdout
    assert "net: declarative_train.models.nets.CNN" in result.stdout
    assert "optimizer: torch.optim.adam.Adam" in result.stdout
    for run_dir in result.run_dirs():
        assert not (run_dir / "results.json").exists()
        assert not (run_dir / "checkpoints").exists()


def test_failure_during_the_run_exits_1_naming_what_failed(run_cli: Callable[..., CLIResult]) -> None:
    # Every argument is valid on its own; the network does not fit the data's 64 features.
    result = run_cli("model.net.in_features=63", "logger=none")
    assert result.returncode == 1
    assert "run failed on rank 0 in fit at epoch 0, step 0" in result.stderr
    assert "cannot be multiplied" in result.stderr
    (run_dir,) = result.run_dirs()
    import json

    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "failed" and "cannot be multiplied" in results["error"]


def test_numeric_precision_choice_is_accepted(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("precision=64", "debug=fast_dev_run")
    assert result.returncode == 0, result.stderr


def test_component_arguments_are_checked_before_anything_runs(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("data.batch_size=-4", "model.net.dropout=2", "metrics.acc.num_classes=0",
                     "callbacks.model_checkpoint.save_top_k=-3")
    assert result.returncode == 2, result.stderr
    for text in ("data.batch_size: Digits: batch_size must be an int >= 1, got -4",
                 "model.net.dropout: MLP: dropout must be in [0, 1), got 2",
                 "metrics.acc.num_classes: Accuracy: argument `num_classes` must be an int >= 2",
                 "callbacks.model_checkpoint.save_top_k: ModelCheckpoint: save_top_k must be >= -1, got -3"):
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert not any((d / "results.json").exists() or (d / "checkpoints").exists() for d in result.run_dirs())


def test_a_validation_interval_longer_than_an_epoch_exits_2(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("trainer.val_check_interval=30", "logger=none")
    assert result.returncode == 2, result.stderr
    assert ("trainer.val_check_interval: 30 training batches is more than an epoch holds (20), so validation "
            "would never run") in result.stderr
    assert "Traceback" not in result.stderr
    assert result.results()["status"] == "failed"
