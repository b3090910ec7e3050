"""Launch plans, process environments and samplers: rules that need no second process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from declarative_train.data.resumable import ResumableSampler
from declarative_train.distributed.env import detect, first_slurm_host
from declarative_train.distributed.plan import check_plan, make_plan, usable_cpus
from declarative_train.distributed.samplers import EvalShardSampler, train_sampler
from tests.conftest import CLIResult


def _acc(**overrides: object) -> dict[str, object]:
    acc: dict[str, object] = {"name": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto", "backend": None,
                              "timeout_s": 600, "max_restarts": 0, "rdzv_endpoint": "localhost:0"}
    acc.update(overrides)
    return acc


@pytest.mark.parametrize(("overrides", "strategy", "world"), [
    ({}, "single", 1),
    ({"devices": 2}, "ddp", 2),
    ({"num_nodes": 2}, "ddp", 2),
    ({"devices": 2, "strategy": "ddp_spawn"}, "ddp_spawn", 2),
    ({"devices": "auto"}, "single", 1),
    ({"devices": [0, 1]}, "ddp", 2),
])
def test_auto_strategy_is_ddp_for_more_than_one_process(overrides: dict[str, object], strategy: str, world: int) -> None:
    plan = make_plan(_acc(**overrides))
    assert (plan.strategy, plan.world_size) == (strategy, world)


def test_minus_one_cpu_devices_means_one_process_per_usable_core() -> None:
    assert make_plan(_acc(devices=-1)).devices == usable_cpus()


@pytest.mark.parametrize(("overrides", "key", "words"), [
    ({"devices": 10_000}, "accelerator.devices", "usable CPU cores"),
    ({"devices": 2, "strategy": "single"}, "accelerator.strategy", "one process"),
    ({"num_nodes": 2}, "accelerator.rdzv_endpoint", "host:port"),
    ({"num_nodes": 2, "strategy": "ddp_spawn", "rdzv_endpoint": "h:1"}, "accelerator.strategy", "one node"),
    ({"backend": "nccl"}, "accelerator.backend", "CUDA"),
    ({"timeout_s": 0}, "accelerator.timeout_s", ">= 1"),
])
def test_impossible_process_layouts_are_config_errors(overrides: dict[str, object], key: str, words: str) -> None:
    issues = check_plan(_acc(**overrides))
    assert [i.path for i in issues] == [key]
    assert words in issues[0].message


def test_torchelastic_and_slurm_environments_are_detected() -> None:
    torch_env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "GROUP_RANK": "1",
                 "MASTER_ADDR": "h0", "MASTER_PORT": "29500"}
    process = detect(torch_env)
    assert process is not None and (process.rank, process.local_rank, process.node_rank) == (3, 1, 1)
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "2", "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
             "SLURM_JOB_ID": "1234", "SLURM_NODELIST": "gpu[07-09],cpu1", "SLURM_JOB_NAME": "train"}
    process = detect(slurm)
    assert process is not None
    assert (process.rank, process.world_size, process.master_addr, process.master_port) == (2, 4, "gpu07", 16234)
    assert detect({**slurm, "SLURM_JOB_NAME": "bash"}) is None  # an interactive allocation
    assert detect({**slurm, "SLURM_NTASKS": "1"}) is None
    assert detect({}) is None


@pytest.mark.parametrize(("nodelist", "host"), [("node1", "node1"), ("n[3-5]", "n3"), ("a[01,07]x", "a01"), ("a,b", "a")])
def test_first_slurm_host(nodelist: str, host: str) -> None:
    assert first_slurm_host(nodelist) == host


def test_eval_shards_hold_every_sample_once() -> None:
    data = list(range(11))
    shards = [list(EvalShardSampler(data, rank=r, world_size=3)) for r in range(3)]
    assert sorted(sum(shards, [])) == data
    assert [len(s) for s in shards] == [4, 4, 3]


def test_two_ranks_with_batch_b_see_the_batches_of_one_process_with_batch_2b() -> None:
    data = TensorDataset(torch.arange(64))
    one = DataLoader(data, batch_size=16, sampler=ResumableSampler(len(data), shuffle=True, seed=5))
    ranks = [DataLoader(data, batch_size=8, sampler=train_sampler(data, rank=r, world_size=2, shuffle=True, seed=5))
             for r in range(2)]
    for epoch in range(2):
        for loader in (one, *ranks):
            loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        for (big,), (a,), (b,) in zip(one, *ranks):
            assert sorted(big.tolist()) == sorted(a.tolist() + b.tolist())


def test_too_many_cpu_devices_exit_2_naming_the_key(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("accelerator.devices=10000", "logger=none")
    assert result.returncode == 2
    assert "accelerator.devices" in result.stderr and "usable CPU cores" in result.stderr
    assert "Traceback" not in result.stderr
