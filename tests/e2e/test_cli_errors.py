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
    result = run_cli("data=synthetic", "data.num_features=8", "data.image_shape=[1,2,2]", "logger=none")
    assert result.returncode == 1
    assert "run failed while building" in result.stderr
    assert "num_features=8 does not match image_shape" in result.stderr
    (run_dir,) = result.run_dirs()
    import json

    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "failed" and "image_shape" in results["error"]


def test_numeric_precision_choice_is_accepted(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("precision=64", "debug=fast_dev_run")
    assert result.returncode == 0, result.stderr
