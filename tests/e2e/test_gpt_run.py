"""``dtrain experiment=gpt_text``: a real process trains and tests a GPT; dtrain-eval reproduces it;
bad text files are exit 2 before training; ``trainer.compile=true`` and the preset's perplexity
against the unigram baseline (slow)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from declarative_train import cli
from declarative_train.data import TextData
from tests.conftest import CLIResult, cli_env, run_entry_point

TINY = ["model.net.n_layer=1", "model.net.n_head=2", "model.net.n_embd=32", "data.block_size=32",
        "data.batch_size=16", "data.modules=[textwrap,bisect,heapq]", "data.val_fraction=0.1",
        "data.test_fraction=0.1", "trainer.max_epochs=1", "trainer.limit_train_batches=40",
        "trainer.limit_val_batches=4", "trainer.limit_test_batches=4", "trainer.log_every_n_steps=5"]


def _tensors(data: TextData, split: str) -> tuple[torch.Tensor, ...]:
    dataset = data.datasets[split]
    assert isinstance(dataset, TensorDataset)
    return dataset.tensors



def _results(result: CLIResult) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.results()


def test_the_preset_trains_tests_and_dtrain_eval_reproduces_it(run_cli: Callable[..., CLIResult],
                                                                tmp_path: Path) -> None:
    results = _results(run_cli("experiment=gpt_text", *TINY))
    assert results["monitor"] == "val/perplexity"
    assert set(results["val"]) == {"val/loss", "val/perplexity"}
    assert results["test"]["test/perplexity"] == pytest.approx(math.exp(results["test"]["test/loss"]), rel=1e-3)
    assert results["val"]["val/perplexity"] < 40  # uniform over bytes: 256; after 40 steps well below
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert (run_dir / "python_source.txt").is_file()
    assert list((run_dir / "tb").iterdir())

    (tmp_path / "eval").mkdir()
    proc = subprocess.run([str(Path(sys.executable).parent / "dtrain-eval"), f"ckpt_path={results['best_model_path']}",
                           "trainer.limit_test_batches=4"],  # the trainer section is not taken from the checkpoint
                          cwd=tmp_path / "eval", env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (eval_dir,) = (tmp_path / "eval" / "outputs" / "runs").iterdir()
    evaluated = json.loads((eval_dir / "results.json").read_text())
    assert evaluated["test"] == pytest.approx(results["test"], rel=1e-5)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "data.path: TextData: path '{path}' does not exist"),
    (b"", "data.path: TextData: path '{path}' is empty"),
    (b"short text", "data.path: TextData: path '{path}' is too short"),
])
def test_bad_text_files_exit_2_naming_data_path(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, content: bytes | None, expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    code, err = run_entry_point(monkeypatch, capsys, cli.train_main,
                                ["dtrain", "data=text", "model=gpt", "metrics=language_model", f"data.path={path}",
                                 "callbacks.model_checkpoint.monitor=val/perplexity", "logger=none"])
    assert code == 2, err
    assert expected.format(path=path) in err
    assert "Traceback" not in err
    assert not list(tmp_path.rglob("results.json"))


@pytest.mark.slow
def test_compile_trains_the_preset(run_cli: Callable[..., CLIResult]) -> None:
    results = _results(run_cli("experiment=gpt_text", *TINY, "trainer.compile=true", "logger=none", timeout=600))
    assert math.isfinite(results["test"]["test/perplexity"]) and results["val"]["val/perplexity"] < 40


def unigram_perplexity(data: TextData, split: str) -> float:
    """Perplexity of the train split's byte frequencies (add-one smoothed) on ``split``'s targets."""
    counts = torch.bincount(_tensors(data, "train")[1].flatten(), minlength=256).double() + 1
    probs = counts / counts.sum()
    return math.exp(-probs[_tensors(data, split)[1].flatten()].log().mean().item())


@pytest.mark.slow
def test_one_epoch_of_the_preset_beats_the_unigram_baseline(run_cli: Callable[..., CLIResult], tmp_path: Path) -> None:
    results = _results(run_cli("experiment=gpt_text", "trainer.max_epochs=1", "logger=none", timeout=900))
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    data = TextData(path=str(run_dir / "python_source.txt"), block_size=64, val_fraction=0.05, test_fraction=0.05)
    data.setup()
    baseline = unigram_perplexity(data, "val")  # 21.4 on CPython 3.11's sources
    assert results["val"]["val/perplexity"] < 0.6 * baseline, (results["val"], baseline)
    assert results["test"]["test/perplexity"] < 0.6 * unigram_perplexity(data, "test")
