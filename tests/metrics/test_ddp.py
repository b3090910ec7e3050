"""Real 2-process gloo runs: sharded data gives the same results as one process on all the data."""

from __future__ import annotations

import time

import pytest
import torch
import torch.multiprocessing as mp

from tests.metrics import _ddp_worker as W
from tests.metrics.test_classes import REGISTRY, _class_kwargs, assert_same

pytestmark = pytest.mark.ddp
WORLD = 2


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(
        W.run,
        args=(WORLD, str(tmp / "init"), str(tmp)),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 150
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("ddp workers did not finish in time")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _single_process(i: int):
    cls, _, kwargs, _ = REGISTRY[i]
    preds, target = W.dataset(i)
    args, kw = _class_kwargs(cls, kwargs)
    metric = cls(*args, **kw)
    metric.update(preds, target)
    return metric.compute()


@pytest.mark.parametrize("scenario", sorted(W.SCENARIOS))
def test_every_metric_matches_single_process(results, scenario):
    for i, (cls, *_rest) in enumerate(REGISTRY):
        expected = _single_process(i)
        for rank in range(WORLD):
            assert_same(
                results[rank][scenario]["registry"][i],
                expected,
                f"{cls.__name__} rank {rank} {scenario}",
            )


@pytest.mark.parametrize("scenario", sorted(W.SCENARIOS))
def test_collection_matches_single_process_in_one_round(results, scenario):
    coll = W.five_metric_collection()
    coll.update(*W.collection_data())
    expected = coll.compute()
    for rank in range(WORLD):
        got = results[rank][scenario]["collection"]
        assert got["values"].keys() == expected.keys()
        for key in expected:
            assert_same(got["values"][key], expected[key], f"{key} rank {rank}")
        # all states are int64 sums (+ the cat sizes): one all-reduce; the exact AUROC cat states: one all-gather
        assert got["counts"] == {"collection": 2, "all_reduce": 1, "all_gather": 1}
    assert (
        results[0][scenario]["collection"]["local_total"]
        + results[1][scenario]["collection"]["local_total"]
        == 90
    )


def test_sync_options_and_base_classes(results):
    r0, r1 = results[0]["extras"], results[1]["extras"]
    assert r0["step"] == r1["step"] == 0.5  # dist_sync_on_step: batch value over both ranks
    assert r0["step_compute"] == 0.5
    assert r0["in_context"] == 2 and r0["after_context"] == 1
    assert r0["tensor_metric_call"] == r1["tensor_metric_call"] == 1.0
    assert r0["tensor_metric_compute"] == r1["tensor_metric_compute"] == 1.0
    assert abs(r0["sklearn"].item() - 2 / 3) < 1e-6 and abs(r1["sklearn"].item() - 2 / 3) < 1e-6
    assert r0["single_exact_auroc_collectives"] == 2
