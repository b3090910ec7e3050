"""The default ``dtrain`` run end to end: accuracy, run folder, results.json, TensorBoard tags."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import CLIResult


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> CLIResult:
    import subprocess
    import sys

    from tests.conftest import cli_env

    cwd = tmp_path_factory.mktemp("default")
    proc = subprocess.run([sys.executable, "-m", "declarative_train"], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    return CLIResult(proc, cwd)


def test_default_run_reaches_accuracy_bar(default_run: CLIResult) -> None:
    assert default_run.returncode == 0, default_run.stderr
    results = default_run.results()
    assert results["status"] == "ok"
    assert results["test"]["test/acc"] >= 0.95


def test_results_json_contract(default_run: CLIResult) -> None:
    results = default_run.results()
    for key in ("status", "monitor", "best_model_path", "best_model_score", "epochs", "global_step",
                "wall_time_s", "val", "test"):
        assert key in results
    assert results["monitor"] == "val/acc"
    assert results["epochs"] == 20
    assert results["global_step"] == 20 * 20  # 1257 train samples / 64 = 20 batches
    assert set(results["val"]) == {"val/loss", "val/acc", "val/f1"}
    assert set(results["test"]) == {"test/loss", "test/acc", "test/f1"}
    # test ran on the best checkpoint, and says so
    assert results["tested_ckpt_path"] == results["best_model_path"]
    assert results["best_model_score"] == max(results["best_model_score"], results["val"]["val/acc"])


def test_run_folder_layout(default_run: CLIResult) -> None:
    (run_dir,) = default_run.run_dirs()
    assert run_dir.parent == default_run.cwd / "outputs" / "runs"
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "train.log",
                 "checkpoints/last.ckpt", "results.json"):
        assert (run_dir / name).is_file(), name
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("epoch=*-step=*.ckpt"))
    assert len(ckpts) == 1  # save_top_k=1
    assert Path(default_run.results()["best_model_path"]).name == ckpts[0]
    assert "epoch 19 done" in (run_dir / "train.log").read_text()


def test_checkpoint_loads_safely_and_holds_the_training_state(default_run: CLIResult) -> None:
    (run_dir,) = default_run.run_dirs()
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["loop"]["global_step"] == 400
    assert {"state_dict", "optimizer", "rng", "callbacks", "config", "package_version"} <= set(ckpt)
    assert ckpt["callbacks"]["model_checkpoint"]["best_model_path"] == default_run.results()["best_model_path"]


def test_tensorboard_holds_the_expected_tags(default_run: CLIResult) -> None:
    (run_dir,) = default_run.run_dirs()
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "val/f1", "test/loss", "test/acc", "test/f1", "lr-Adam"} <= scalars
    train_loss = events.Scalars("train/loss")
    assert [e.step for e in train_loss][:3] == [10, 20, 30]  # log_every_n_steps=10
    assert train_loss[-1].value < train_loss[0].value
    assert len(events.Scalars("val/acc")) == 20
    tensors = set(events.Tags()["tensors"])
    assert "config/text_summary" in tensors
    plugins = events.PluginTagToContent("hparams") if "hparams" in events.Tags().get("plugins", []) else {}
    assert plugins or any("hparams" in t for t in tensors) or _has_hparams(run_dir / "tb")


def _has_hparams(folder: Path) -> bool:
    from tensorboard.backend.event_processing import event_file_loader

    for path in folder.glob("events.out.tfevents.*"):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    return True
    return False


def test_two_runs_started_together_get_different_folders(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import cli_env

    args = [sys.executable, "-m", "declarative_train", "debug=fast_dev_run", "logger=none"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    runs = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert json.loads((run / "results.json").read_text())["status"] == "ok"
