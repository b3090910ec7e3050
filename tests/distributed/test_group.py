"""Leaving the process group frees DDP reducers first (a reducer freed later can deadlock gloo)."""

from __future__ import annotations

import weakref
from datetime import timedelta

import pytest
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from declarative_train.distributed.group import leave_process_group


def test_a_ddp_wrapper_in_a_reference_cycle_is_freed_before_the_group_is_destroyed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=30))
    try:
        wrapper = DistributedDataParallel(nn.Linear(4, 2))
        wrapper.myself = [wrapper]  # type: ignore[assignment]  # a cycle only the collector frees
        alive = weakref.ref(wrapper)
        del wrapper
        alive_at_destroy = []
        destroy = dist.destroy_process_group

        def recording_destroy(*args: object) -> None:
            alive_at_destroy.append(alive() is not None)
            destroy(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(dist, "destroy_process_group", recording_destroy)
        leave_process_group()
        assert alive_at_destroy == [False]
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_leaving_without_a_group_does_nothing() -> None:
    assert not dist.is_initialized()
    leave_process_group()
