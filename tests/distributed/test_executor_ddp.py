"""The executor under real 2-process DDP (gloo) against the same executor in one process."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from declarative_train.distributed import SingleProcess
from tests.distributed import _scenarios as S
from tests.distributed._procs import spawn_ranks

pytestmark = pytest.mark.ddp
WORLD = 2


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn_ranks(S.run_rank, WORLD, tmp_path_factory.mktemp("ranks"), 180, "DDP")


def _single(name: str) -> Any:
    torch.set_num_threads(1)
    return S.SCENARIOS[name](SingleProcess(), S.GLOBAL_BATCH)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=lambda m, k=key: f"{k}: {m}")


def test_val_and_test_metrics_equal_one_process_exactly(ranks: list[dict[str, Any]]) -> None:
    single = _single("evaluate")
    for rank in ranks:
        for stage in ("val", "test"):
            got, want = rank["evaluate"][stage], single[stage]
            assert got.keys() == want.keys()
            for name in want:
                if name.endswith("/loss"):  # batch means summed in another order: last bits differ
                    assert got[name] == pytest.approx(want[name], rel=1e-6)
                else:
                    assert got[name] == want[name], name


def test_sync_batchnorm_on_cpu_matches_one_process_with_the_global_batch(ranks: list[dict[str, Any]]) -> None:
    single = _single("sync_batchnorm")
    assert any("running_mean" in k for k in single)
    for rank in ranks:
        _assert_close(rank["sync_batchnorm"], single)


def test_accumulation_syncs_gradients_once_per_optimizer_step(ranks: list[dict[str, Any]]) -> None:
    single = _single("accumulate")
    for rank in ranks:
        out = rank["accumulate"]
        assert out["steps"] == single["steps"] == 3
        assert out["syncs"] == 3  # 9 micro-batches, no_sync on 6 of them
        _assert_close(out["weights"], single["weights"])


def test_find_unused_parameters_lets_a_partly_used_model_train(ranks: list[dict[str, Any]]) -> None:
    single = _single("unused_parameters")
    for rank in ranks:
        _assert_close(rank["unused_parameters"], single)


def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_check(ranks: list[dict[str, Any]]) -> None:
    bad, other = ranks[1]["nan_on_one_rank"], ranks[0]["nan_on_one_rank"]
    assert bad["error"].startswith("NonFiniteLossError: non-finite training loss (nan) at step 2")
    assert other["error"].startswith("NonFiniteLossError: non-finite training loss on another rank by step 2")
    assert bad["step"] == other["step"] == 2
    assert other["seconds"] < 30  # not a collective's timeout


def test_ema_replicas_stay_identical_and_match_one_process(ranks: list[dict[str, Any]]) -> None:
    single = _single("ema")
    first, second = ranks[0]["ema"], ranks[1]["ema"]
    for a, b, want in zip(first["averaged"], second["averaged"], single["averaged"], strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, want, atol=1e-5, rtol=1e-4)
    for key in first["weights"]:
        assert torch.equal(first["weights"][key], second["weights"][key]), key
    _assert_close({k: v for k, v in first["weights"].items() if "running" not in k},
                  {k: v for k, v in single["weights"].items() if "running" not in k})


def test_swa_replicas_stay_identical_batch_norm_statistics_included(ranks: list[dict[str, Any]]) -> None:
    single = _single("swa")
    first, second = ranks[0]["swa"], ranks[1]["swa"]
    assert any("running_var" in key for key in first["weights"])
    for key in first["weights"]:
        assert torch.equal(first["weights"][key], second["weights"][key]), key
    _assert_close({k: v for k, v in first["weights"].items() if "running" not in k and "num_batches" not in k},
                  {k: v for k, v in single["weights"].items() if "running" not in k and "num_batches" not in k})
    assert first["test"] == second["test"]


def test_predict_of_the_train_split_gives_each_rank_its_rows_in_order(ranks: list[dict[str, Any]]) -> None:
    single = _single("predict_train")
    torch.testing.assert_close(single["predicted"], single["expected"], atol=1e-6, rtol=0)
    rows = len(single["expected"])  # 1257: the shards differ by one row, none is repeated
    for rank, out in enumerate(ranks):
        part = out["predict_train"]
        assert len(part["predicted"]) == len(range(rank, rows, WORLD))
        torch.testing.assert_close(part["predicted"], part["expected"][rank::WORLD], atol=1e-6, rtol=0)
        torch.testing.assert_close(part["expected"], single["expected"], atol=1e-5, rtol=1e-4)
