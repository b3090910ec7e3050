"""How many processes a job runs as, and how they are started, from ``cfg.accelerator``.

Rules (README "Multi-process training"):

* ``devices`` per node: a count, a list of indices, ``-1`` (all) or ``auto`` (CPU: 1; CUDA: all).
  On the CPU a device is a process; at most the cores this process may use (one process per core
  at least: more would only compete for the same cores, which gloo makes slower, not faster).
* ``strategy: auto`` is ``ddp`` when ``devices * num_nodes > 1`` on cpu/gpu, ``xla`` on tpu, and
  ``single`` otherwise.
* ``strategy: fsdp`` launches like ``ddp``; with one process in all it is ``single`` (nothing to
  shard; the job logs a warning). ``accelerator.fsdp.replicate`` must divide the process count.
* Under an external launcher (torchrun, SLURM ``srun``) its environment decides the process count
  and ``dtrain`` starts no processes (:mod:`declarative_train.distributed.external`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs

from declarative_train.errors import ConfigIssue

#: How FSDP checkpoints hold the model and optimizer: ``sharded`` folders (each rank its shards,
#: through DCP) or ``full`` single files (gathered to rank 0), Lightning's FSDP ``state_dict_type`` values.
STATE_DICT_TYPES = ("sharded", "full")

MULTI_PROCESS = ("ddp", "ddp_spawn", "fsdp")


@attrs.frozen
class LaunchPlan:
    """The processes of one job."""

    strategy: str
    """``single``, ``ddp``, ``ddp_spawn``, ``fsdp`` or ``xla`` (never ``auto``)."""
    devices: int
    """Processes (devices) per node."""
    num_nodes: int
    """Nodes."""

    @property
    def world_size(self) -> int:
        """Processes in all."""
        return self.devices * self.num_nodes


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def available_devices(name: str) -> int:
    """How many devices of accelerator ``name`` (already resolved from ``auto``) exist here."""
    if name == "gpu":
        import torch

        return torch.cuda.device_count()
    if name == "cpu":
        return usable_cpus()
    return 1


def device_count(name: str, devices: Any) -> int:
    """Devices asked for by ``devices`` on accelerator ``name`` (``-1``/``auto`` resolved)."""
    if isinstance(devices, Sequence) and not isinstance(devices, str):  # a list of indices
        return len(devices)
    if devices == -1 or (devices == "auto" and name == "gpu"):
        return max(1, available_devices(name))
    if devices == "auto":
        return 1
    return int(devices)


def make_plan(acc: Any) -> LaunchPlan:
    """The launch plan for an accelerator config (a node or a plain dict)."""
    from declarative_train.accelerators import resolve_accelerator_name

    name = resolve_accelerator_name(acc["name"])
    devices = device_count(name, acc["devices"])
    strategy = acc["strategy"]
    if strategy == "auto" and name == "tpu":
        strategy = "xla"
    elif strategy == "auto":
        strategy = "ddp" if devices * acc["num_nodes"] > 1 else "single"
    elif strategy == "fsdp" and devices * acc["num_nodes"] == 1:
        strategy = "single"  # one process: nothing to shard
    return LaunchPlan(strategy=strategy, devices=devices, num_nodes=acc["num_nodes"])


def check_plan(acc: dict[str, Any]) -> list[ConfigIssue]:
    """Validation issues of the multi-process settings (run after the basic accelerator checks)."""
    from declarative_train.accelerators import resolve_accelerator_name

    name = resolve_accelerator_name(acc["name"])
    plan = make_plan(acc)
    issues = []
    have = available_devices(name)
    asked = acc["devices"]
    if name in ("cpu", "gpu") and plan.devices > have:
        what = "usable CPU cores" if name == "cpu" else "CUDA devices"
        issues.append(ConfigIssue("accelerator.devices", f"asks for {plan.devices} devices but this machine has {have} {what}"))
    if name == "gpu" and isinstance(asked, list) and any(i >= have for i in asked):
        issues.append(ConfigIssue("accelerator.devices", f"indices {asked} include devices that do not exist ({have} present)"))
    if plan.strategy == "single" and plan.world_size > 1:
        issues.append(ConfigIssue("accelerator.strategy", f"'single' runs one process, but devices x num_nodes = {plan.world_size}; use ddp"))
    if plan.strategy in MULTI_PROCESS and name not in ("cpu", "gpu"):
        issues.append(ConfigIssue("accelerator.strategy", f"{plan.strategy} runs on cpu or gpu, not {name} (use xla on tpu)"))
    if plan.strategy == "ddp_spawn" and plan.num_nodes > 1:
        issues.append(ConfigIssue("accelerator.strategy", "ddp_spawn starts processes on one node; use ddp for num_nodes > 1"))
    issues += _fsdp_issues(acc, plan)
    if plan.num_nodes > 1 and _port(acc["rdzv_endpoint"]) in (None, 0):
        issues.append(ConfigIssue("accelerator.rdzv_endpoint", f"num_nodes > 1 needs a host:port every node reaches, got {acc['rdzv_endpoint']!r}"))
    if acc["backend"] not in (None, "gloo", "nccl", "mpi", "ucc"):
        issues.append(ConfigIssue("accelerator.backend", f"{acc['backend']!r} is not one of gloo, nccl, mpi, ucc (or null)"))
    if acc["backend"] == "nccl" and name != "gpu":
        issues.append(ConfigIssue("accelerator.backend", "nccl needs CUDA tensors; use gloo on the CPU"))
    for key in ("timeout_s", "max_restarts"):
        if acc[key] < (1 if key == "timeout_s" else 0):
            issues.append(ConfigIssue(f"accelerator.{key}", f"must be >= {1 if key == 'timeout_s' else 0}, got {acc[key]}"))
    return issues


def _fsdp_issues(acc: dict[str, Any], plan: LaunchPlan) -> list[ConfigIssue]:
    fsdp = acc.get("fsdp") or {}
    if acc["strategy"] != "fsdp":
        return []
    issues = []
    replicate = fsdp.get("replicate", 1)
    if replicate < 1 or plan.world_size % replicate:
        issues.append(ConfigIssue("accelerator.fsdp.replicate", f"{replicate} does not divide the {plan.world_size} "
                                  "processes (devices x num_nodes); HSDP needs replicate x shard = world size"))
    if acc.get("sync_batchnorm"):
        issues.append(ConfigIssue("accelerator.sync_batchnorm", "is a ddp setting; fsdp does not convert batch norm"))
    return issues


def _port(endpoint: str) -> int | None:
    host, _, port = str(endpoint).rpartition(":")
    return int(port) if host and port.isdigit() else None

