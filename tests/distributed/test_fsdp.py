"""The executor under real 2-rank FSDP2 (gloo) against DDP and one process with the global batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from declarative_train.checkpoint import read
from declarative_train.distributed import SingleProcess
from tests.distributed import _fsdp_scenarios as S
from tests.distributed._procs import spawn_ranks
from tests.distributed._scenarios import SCENARIOS as DDP_SCENARIOS

pytestmark = pytest.mark.ddp
WORLD = 2


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fsdp_ranks")


@pytest.fixture(scope="module")
def ranks(out_dir: Path) -> list[dict[str, Any]]:
    return spawn_ranks(S.run_rank, WORLD, out_dir, 300, "FSDP")


def _single(scenario: Any, *args: Any) -> Any:
    torch.set_num_threads(1)
    return scenario(SingleProcess(), S.GLOBAL_BATCH, *args)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=f"{key} differs")


def test_val_loss_and_weights_equal_ddp_and_one_process(ranks: list[dict[str, Any]]) -> None:
    single = _single(S.train)
    fsdp, ddp = ranks[0]["fsdp/train"], ranks[0]["ddp/train"]
    assert ranks[1]["fsdp/train"]["weights"] == {}  # the full weights are gathered on rank 0 only
    assert isinstance(ranks[0]["fsdp/train"]["weights"]["net.inp.weight"], torch.Tensor)
    for rank in ranks:
        assert rank["fsdp/train"]["val_loss"] == pytest.approx(single["val_loss"], rel=1e-5)
        assert rank["fsdp/train"]["val_loss"] == pytest.approx(rank["ddp/train"]["val_loss"], rel=1e-5)
    _assert_close(fsdp["weights"], single["weights"])
    _assert_close(fsdp["weights"], ddp["weights"])


def test_each_rank_holds_half_of_the_parameter_and_optimizer_bytes(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        fsdp, ddp = rank["fsdp/train"]["bytes"], rank["ddp/train"]["bytes"]
        assert ddp["optimizer"] == 2 * ddp["params"]  # Adam: two moments per parameter
        total_fsdp, total_ddp = fsdp["params"] + fsdp["optimizer"], ddp["params"] + ddp["optimizer"]
        assert total_fsdp / total_ddp == pytest.approx(0.5, rel=0.1)


def test_accumulation_reduces_once_per_step_and_clipping_matches_ddp(ranks: list[dict[str, Any]]) -> None:
    single = _single(S.accumulate_clip)
    for rank in ranks:
        fsdp, ddp = rank["fsdp/accumulate_clip"], rank["ddp/accumulate_clip"]
        assert fsdp["steps"] == ddp["steps"] == 3
        # One reduce-scatter per FSDP unit (3 blocks + the task) per optimizer step, none on micro-batches.
        assert fsdp["fsdp_modules"] == 4
        assert fsdp["reductions"] == 3 * 4
        assert min(fsdp["norms"]) > 0.05  # clipping changed every step
        assert fsdp["norms"] == pytest.approx(ddp["norms"], rel=1e-5)
        assert fsdp["norms"] == pytest.approx(single["norms"], rel=1e-5)
    _assert_close(ranks[0]["fsdp/accumulate_clip"]["weights"], ranks[0]["ddp/accumulate_clip"]["weights"])
    _assert_close(ranks[0]["fsdp/accumulate_clip"]["weights"], single["weights"])


@pytest.mark.parametrize("kind", ["fsdp/resume", "fsdp_full/resume_full"])
def test_resume_from_a_fsdp_checkpoint_is_bit_identical(ranks: list[dict[str, Any]], kind: str) -> None:
    out = ranks[0][kind]
    assert out["resumed_step"] == 8
    assert out["reference"].keys() == out["resumed"].keys() and out["reference"]
    for key, value in out["reference"].items():
        assert torch.equal(value, out["resumed"][key]), key


@pytest.mark.parametrize(("name", "sharded"), [("fsdp_step4.ckpt", True), ("fsdp_full_step4.ckpt", False)])
def test_a_fsdp_checkpoint_resumes_in_one_process(ranks: list[dict[str, Any]], out_dir: Path, name: str,
                                                  sharded: bool) -> None:
    ckpt = out_dir / name
    assert ckpt.is_dir() == sharded
    saved = read(str(ckpt))  # a folder is read whole, its optimizer state in optimizer.state_dict()'s layout
    assert sorted(saved["optimizer"]["state"]) == list(range(len(saved["state_dict"])))  # integer ids, every parameter
    resumed = _single(S.resume_from, ckpt)
    assert resumed["resumed_step"] == 8
    _assert_close(resumed["resumed"], ranks[0]["fsdp/resume"]["reference"])


def test_val_and_test_metrics_are_synced_over_ranks_as_in_one_process(ranks: list[dict[str, Any]]) -> None:
    single = _single(DDP_SCENARIOS["evaluate"])
    for rank in ranks:
        for stage in ("val", "test"):
            got, want = rank["fsdp/evaluate"][stage], single[stage]
            assert got.keys() == want.keys()
            for name in want:
                assert got[name] == pytest.approx(want[name], rel=1e-6), name


def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_check(ranks: list[dict[str, Any]]) -> None:
    bad, other = ranks[1]["fsdp/nan_on_one_rank"], ranks[0]["fsdp/nan_on_one_rank"]
    assert bad["error"].startswith("NonFiniteLossError: non-finite training loss (nan) at step 2")
    assert other["error"].startswith("NonFiniteLossError: non-finite training loss on another rank by step 2")
    assert bad["step"] == other["step"] == 2
    assert other["seconds"] < 30  # not a collective's timeout


def test_activation_checkpointing_under_fsdp_trains_the_same_weights(ranks: list[dict[str, Any]]) -> None:
    recomputed, plain = ranks[0]["fsdp/train_recomputed"], ranks[0]["fsdp/train"]
    assert recomputed["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-6)
    _assert_close(recomputed["weights"], plain["weights"], atol=1e-6)


def test_bf16_mixed_trains_like_ddp_in_bf16_mixed(ranks: list[dict[str, Any]]) -> None:
    for rank in ranks:
        fsdp, ddp, fp32 = rank["fsdp/train_bf16"], rank["ddp/train_bf16"], rank["fsdp/train"]
        assert fsdp["bytes"] == fp32["bytes"]  # float32 sharded parameters and Adam state; bfloat16 only in compute
        assert fsdp["val_loss"] != fp32["val_loss"]  # it did compute in bfloat16
        assert fsdp["val_loss"] == pytest.approx(ddp["val_loss"], rel=2e-2)
        assert fsdp["val_loss"] == pytest.approx(fp32["val_loss"], rel=5e-2)


def test_hsdp_replicating_over_both_ranks_trains_like_one_process(ranks: list[dict[str, Any]]) -> None:
    single = _single(S.train)
    for rank in ranks:
        hsdp = rank["fsdp/train_hsdp"]
        assert hsdp["val_loss"] == pytest.approx(single["val_loss"], rel=1e-5)
        assert hsdp["bytes"] == rank["ddp/train"]["bytes"]  # shard groups of one rank: nothing sharded
    _assert_close(ranks[0]["fsdp/train_hsdp"]["weights"], single["weights"])


def test_rank0_init_gives_every_rank_rank0s_weights_and_buffers(ranks: list[dict[str, Any]]) -> None:
    """Built on the meta device on rank 1, sharded, then sent rank 0's weights and buffers: the same
    training as when every rank builds the model, to the bit."""
    received, built = [rank["fsdp_r0/train_rank0_init"] for rank in ranks], ranks[0]["fsdp/train_rank0_init"]
    assert [rank["on_meta"] for rank in received] == [False, True]
    assert built["weights"] and received[0]["weights"].keys() == built["weights"].keys()
    for key, value in built["weights"].items():
        assert torch.equal(received[0]["weights"][key], value), key
    assert received[0]["val_loss"] == received[1]["val_loss"] == built["val_loss"]
    for rank, got in zip(ranks, received):  # batch statistics of this rank's batches, as when built here
        want = rank["fsdp/train_rank0_init"]["buffers"]
        assert got["buffers"].keys() == want.keys() == {"net.norm.running_mean", "net.norm.running_var",
                                                         "net.norm.num_batches_tracked", "net.scale"}
        for name, value in want.items():
            assert torch.equal(got["buffers"][name], value), name
    assert torch.equal(received[1]["buffers"]["net.scale"], received[0]["buffers"]["net.scale"])  # not persistent: sent too
