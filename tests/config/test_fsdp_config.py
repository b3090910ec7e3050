"""``accelerator.strategy=fsdp``: its config section, launch plan rules and wrap checks (no processes)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from declarative_train.build import (
    build_distribution,
    build_task,
    check_components,
    seed_everything,
)
from declarative_train.config.validate import collect_issues
from declarative_train.distributed import FSDPDistribution, SingleProcess
from declarative_train.distributed.env import ProcessEnv
from declarative_train.distributed.fsdp import by_index, by_name, repeated_block_classes, wrap_units
from declarative_train.distributed.plan import MULTI_PROCESS, make_plan
from declarative_train.errors import ArgumentError, ConfigError
from tests.distributed._fsdp_scenarios import Block, ResidualMLP

FSDP = ["accelerator=cpu", "accelerator.strategy=fsdp"]
TWO = ProcessEnv(rank=0, local_rank=0, world_size=2, node_rank=0, master_addr="127.0.0.1", master_port=1, source="test")


def _issues(cfg: DictConfig) -> dict[str, str]:
    return {issue.path: issue.message for issue in collect_issues(cfg)}


@pytest.fixture(autouse=True)
def _two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("declarative_train.distributed.plan.usable_cpus", lambda: 4)


def test_fsdp_section_defaults_and_plan(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg([*FSDP, "accelerator.devices=2"])
    assert dict(cfg.accelerator.fsdp) == {"wrap": None, "reshard_after_forward": True, "cpu_offload": False,
                                          "replicate": 1, "state_dict_type": "sharded", "rank0_init": True}
    assert "fsdp" in MULTI_PROCESS
    assert make_plan(cfg.accelerator).strategy == "fsdp"
    assert _issues(cfg) == {}


def test_fsdp_with_one_process_plans_a_single_process_and_warns(
    compose_cfg: Callable[..., DictConfig], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    cfg = compose_cfg([*FSDP, "accelerator.devices=1"])
    assert make_plan(cfg.accelerator).strategy == "single"
    assert _issues(cfg) == {}
    with caplog.at_level(logging.WARNING):
        assert isinstance(build_distribution(cfg), SingleProcess)
    assert "strategy=fsdp with one process" in caplog.text


def test_replicate_that_does_not_divide_the_world_size_is_refused(compose_cfg: Callable[..., DictConfig]) -> None:
    issues = _issues(compose_cfg([*FSDP, "accelerator.devices=4", "accelerator.fsdp.replicate=3"]))
    assert "does not divide the 4 processes" in issues["accelerator.fsdp.replicate"]
    assert "accelerator.fsdp.replicate" not in _issues(compose_cfg([*FSDP, "accelerator.devices=4",
                                                                    "accelerator.fsdp.replicate=2"]))
    with pytest.raises(ArgumentError, match="replicate"):
        FSDPDistribution(TWO, replicate=3)


def test_a_wrap_name_the_model_lacks_is_refused_with_did_you_mean(compose_cfg: Callable[..., DictConfig]) -> None:
    # dtrain checks it with the components' constructors (the model built on the meta device).
    with pytest.raises(ConfigError) as info:
        check_components(compose_cfg([*FSDP, "accelerator.devices=2", "accelerator.fsdp.wrap=[Linaer]"]))
    assert [issue.path for issue in info.value.issues] == ["accelerator.fsdp.wrap"]
    message = info.value.issues[0].message
    assert "'Linaer'" in message and "Did you mean 'Linear'?" in message and "MLP" in message
    check_components(compose_cfg([*FSDP, "accelerator.devices=2", "accelerator.fsdp.wrap=[Linear]"]))
    check_components(compose_cfg(["accelerator.fsdp.wrap=[Linaer]"]))  # not checked without fsdp
    # The worker refuses it the same way (before any collective), should the config not be validated.
    with pytest.raises(ConfigError, match=r"accelerator\.fsdp\.wrap.*Did you mean 'Block'"):
        FSDPDistribution(TWO, wrap=["Blok"]).wrap_training_step(ResidualMLP())


def test_default_units_are_the_blocks_a_module_list_repeats() -> None:
    model = ResidualMLP(depth=3)
    assert repeated_block_classes(model) == ["Block"]
    units = wrap_units(model, None)
    assert len(units) == 3 and all(isinstance(u, Block) for u in units)
    assert units[0] is model.blocks[2]  # innermost (last registered) first
    assert wrap_units(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), None) == []  # no ModuleList: the root only
    assert len(wrap_units(model, ["Linear"])) == 2 + 3 * 2


def test_optimizer_state_layout_round_trips_between_names_and_ids() -> None:
    model = ResidualMLP(depth=2)
    head = [*model.inp.parameters(), *model.out.parameters()]
    groups: list[dict[str, Any]] = [{"params": list(model.blocks.parameters())}, {"params": head, "lr": 0.1}]
    optimizer = torch.optim.Adam(groups)
    model(torch.randn(4, 64)).sum().backward()
    optimizer.step()
    plain = optimizer.state_dict()
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    named = by_name(plain, order)
    assert named["param_groups"][1]["params"] == ["inp.weight", "inp.bias", "out.weight", "out.bias"]
    assert by_index(named, order) == plain


def test_weight_averaging_callbacks_are_accepted_under_fsdp(compose_cfg: Callable[..., DictConfig]) -> None:
    # Each rank averages its shards (tests/distributed/test_fsdp_averaging.py).
    check_components(compose_cfg([*FSDP, "accelerator.devices=2", "callbacks=[default,ema,swa]"]))


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    for name, value in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": 2, "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": 1}.items():
        monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize("rank", [0, 1])
def test_rank0_init_builds_the_weights_on_rank_0_only_and_leaves_the_rngs_as_they_were(
    compose_cfg: Callable[..., DictConfig], monkeypatch: pytest.MonkeyPatch, rank: int,
) -> None:
    cfg = compose_cfg([*FSDP, "accelerator.devices=2"])
    seed_everything(0)
    single = build_task(cfg)  # outside a job: built whole, drawing from the global stream
    assert not torch.equal(torch.rand(3), first_draws()[0])
    _as_rank(monkeypatch, rank)
    seed_everything(0)
    task = build_task(cfg)
    after = torch.rand(3), random.random(), np.random.rand()
    assert torch.equal(after[0], first_draws()[0]) and after[1:] == first_draws()[1:]  # every rank: as before the build
    assert {param.is_meta for param in task.parameters()} == {rank == 1}
    if rank == 0:
        for (name, value), (_, want) in zip(task.state_dict().items(), single.state_dict().items(), strict=True):
            assert torch.equal(value, want), name  # the weights of a single-process build
    every_rank = build_task(compose_cfg([*FSDP, "accelerator.devices=2", "accelerator.fsdp.rank0_init=false"]))
    assert not any(param.is_meta for param in every_rank.parameters())


def first_draws() -> tuple[torch.Tensor, float, float]:
    """The first draws of torch, python and numpy after ``seed_everything(0)``."""
    seed_everything(0)
    return torch.rand(3), random.random(), float(np.random.rand())
