"""EMA and SWA under real 2-rank FSDP2 (gloo): each rank averages its shards, like DDP's whole average.

The scenarios run on spawned ranks (tests/distributed/_averaging_scenarios.py); the CLI test kills
a ``dtrain`` run of both ranks mid-epoch and resumes it, then evaluates its best folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from declarative_train.checkpoint import read
from tests.conftest import cli_env
from tests.distributed import _averaging_scenarios as S
from tests.distributed._procs import only_run_dir, results, spawn_ranks
from tests.e2e.resume_helpers import KILLER, assert_same_training_state, dtrain

pytestmark = pytest.mark.ddp
WORLD = 2


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fsdp_averaging")


@pytest.fixture(scope="module")
def ranks(out_dir: Path) -> list[dict[str, Any]]:
    return spawn_ranks(S.run_rank, WORLD, out_dir, 300, "FSDP averaging")


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=f"{key} differs")


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_ema_under_fsdp_averages_like_ddp_and_validates_with_the_average(ranks: list[dict[str, Any]]) -> None:
    fsdp, ddp = ranks[0]["fsdp/ema_train"], ranks[0]["ddp/ema_train"]
    _assert_close(fsdp["averaged"], ddp["averaged"])
    _assert_close(fsdp["training"], ddp["training"])
    _assert_close(fsdp["weights"], fsdp["averaged"], atol=0)  # fit ended with the average in the model
    assert not torch.allclose(fsdp["averaged"]["net.inp.weight"], fsdp["training"]["net.inp.weight"], atol=1e-3)
    _assert_close(ranks[0]["hsdp/ema_train"]["averaged"], ddp["averaged"])  # 2-D mesh: replicated, then sharded
    for rank in ranks:
        got = rank["fsdp/ema_train"]
        assert got["val_during_fit"] == pytest.approx(ddp["val_during_fit"], rel=1e-5)
        assert got["val_during_fit"] == pytest.approx(got["val_after_fit"], rel=1e-6)  # the average validated
        assert abs(got["val_training"] - got["val_during_fit"]) > 1e-3
        assert got["val_training"] == pytest.approx(ddp["val_training"], rel=1e-5)


@pytest.mark.parametrize("kind", ["fsdp/ema_resume", "fsdp_full/ema_resume", "fsdp/ema_resume_training_weights"])
def test_ema_resume_is_bit_identical(ranks: list[dict[str, Any]], kind: str) -> None:
    out = ranks[0][kind]
    assert out["resumed_step"] == S.STEPS and out["updates"] == (4, 4)
    for part in ("averaged", "training"):
        _assert_equal(out["resumed"][part], out["reference"][part])


@pytest.mark.parametrize(("kind", "name"), [("fsdp/ema_resume", "ema_sharded"), ("fsdp_full/ema_resume", "ema_full.ckpt"),
                                            ("fsdp/ema_resume_training_weights", "ema_sharded_training")])
def test_ema_checkpoints_hold_the_average(ranks: list[dict[str, Any]], out_dir: Path, kind: str, name: str) -> None:
    at_step5 = ranks[0][kind]["at_step5"]
    saved = read(str(out_dir / name))  # a folder is read whole
    ema = saved["callbacks"]["ema"]
    assert ema["num_updates"] == 2
    _assert_equal(ema["averaged"], at_step5["averaged"])
    weights = {key: saved["state_dict"][key] for key in at_step5["training"]}
    if name == "ema_sharded_training":  # use_for_checkpoint=false: the training weights are the model's
        assert ema["training_weights"] is None
        _assert_equal(weights, at_step5["training"])
    else:
        _assert_equal(weights, at_step5["averaged"])
        _assert_equal(ema["training_weights"], at_step5["training"])
    if (out_dir / name).is_dir():  # each rank wrote its half of the average
        metadata = FileSystemReader(str(out_dir / name)).read_metadata().state_dict_metadata
        averaged = next(md for key, md in metadata.items() if "averaged" in key and "inp.weight" in key)
        assert isinstance(averaged, TensorStorageMetadata)
        assert sorted(tuple(c.offsets) for c in averaged.chunks) == [(0, 0), (16, 0)]


def test_swa_under_fsdp_matches_ddp_batch_norm_statistics_included(ranks: list[dict[str, Any]]) -> None:
    fsdp, ddp = ranks[0]["fsdp/swa_train"], ranks[0]["ddp/swa_train"]
    assert fsdp["n_averaged"] == ddp["n_averaged"] == 2
    assert any("running_mean" in key for key in fsdp["weights"])
    _assert_close(fsdp["weights"], ddp["weights"])
    for rank in ranks:
        got = rank["fsdp/swa_train"]["test"]
        assert got == pytest.approx(ddp["test"], rel=1e-5)


def test_swa_resume_under_fsdp_is_bit_identical(ranks: list[dict[str, Any]]) -> None:
    resumed, reference = ranks[0]["fsdp/swa_resumed"], ranks[0]["fsdp/swa_train"]
    assert resumed["n_averaged"] == 2
    _assert_equal(resumed["weights"], reference["weights"])
    assert resumed["test"] == reference["test"]


EMA = ["+callbacks.ema._target_=declarative_train.callbacks.EMA", "+callbacks.ema.decay=0.9",
       "+callbacks.ema.update_every=2"]
FSDP = ["accelerator=cpu", "accelerator.devices=2", "data.batch_size=32", "accelerator.strategy=fsdp",
        "trainer.max_epochs=2", *EMA]


def test_ema_under_fsdp_killed_mid_epoch_resumes_bit_identically_and_evaluates_the_average(tmp_path: Path) -> None:
    reference, killed, resumed = tmp_path / "reference", tmp_path / "killed", tmp_path / "resumed"
    assert (proc := dtrain(reference, *FSDP)).returncode == 0, proc.stderr
    assert (proc := dtrain(killed, *FSDP, *KILLER, "+callbacks.killer.after_step=31")).returncode == 1, proc.stderr
    last = killed / "checkpoints" / "last.ckpt"
    saved = read(str(last))
    assert 0 < saved["loop"]["batch_idx"] < 20 and 0 < saved["callbacks"]["ema"]["num_updates"] < 20
    assert (proc := dtrain(resumed, *FSDP, f"ckpt_path={last}")).returncode == 0, proc.stderr
    ref, res = read(str(reference / "checkpoints" / "last.ckpt")), read(str(resumed / "checkpoints" / "last.ckpt"))
    assert_same_training_state(res, ref)  # the model weights in the folders are the averages
    for part in ("averaged", "training_weights"):
        _assert_equal(res["callbacks"]["ema"][part], ref["callbacks"]["ema"][part])
    assert results(resumed)["val"] == results(reference)["val"]
    assert results(resumed)["test"] == results(reference)["test"]

    # dtrain-eval (one process) of the best folder evaluates the average the run tested.
    best = results(reference)["best_model_path"]
    _assert_equal({k: v for k, v in read(best)["state_dict"].items() if k in res["callbacks"]["ema"]["averaged"]},
                  read(best)["callbacks"]["ema"]["averaged"])
    evaluated = tmp_path / "evaluated"
    evaluated.mkdir()
    proc = subprocess.run([str(Path(sys.executable).parent / "dtrain-eval"), f"ckpt_path={best}"], cwd=evaluated,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert results(only_run_dir(evaluated))["test"] == pytest.approx(results(reference)["test"], rel=1e-6)
