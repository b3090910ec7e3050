"""Executor scenarios under FSDP2 and DDP on spawned gloo ranks, and in one process for reference.

Each scenario takes a distribution and the per-process batch size and returns plain tensors and
numbers that the tests compare across FSDP, DDP and one process with the same global batch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule

from declarative_train import Classification, Event, Executor
from declarative_train.data import Digits
from declarative_train.distributed import Distribution
from tests.distributed import _scenarios as ddp_scenarios

GLOBAL_BATCH = 32


class Block(nn.Module):
    """A residual block: ``x + W2 tanh(W1 x)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(torch.tanh(self.inner(x)))


class ResidualMLP(nn.Module):
    """Digits in, 10 classes out, through a ModuleList of repeated blocks (FSDP's default units)."""

    def __init__(self, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(depth)])
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for block in self.blocks:
            x = block(x)
        return self.out(x)


class ScaledMLP(ResidualMLP):
    """``ResidualMLP`` with buffers: a BatchNorm's statistics and a random non-persistent scale."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(32)
        self.register_buffer("scale", 0.5 + torch.rand(32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.inp(x)) * self.scale
        for block in self.blocks:
            x = block(x)
        return self.out(x)


class SnapshotAt:
    """Saves a checkpoint (on every rank: FSDP gathers) after optimizer step ``step``."""

    def __init__(self, path: Path, step: int) -> None:
        self.path, self.step = path, step

    def attach(self, executor: Executor) -> None:
        executor.events.on(Event.STEP_CHECKPOINT, self._save, once=self.step)

    def _save(self, executor: Any) -> None:
        executor.save_checkpoint(str(self.path))


def _executor(distribution: Distribution, batch: int, callbacks: list[Any] = (),  # type: ignore[assignment]
              net: Callable[[], nn.Module] = ResidualMLP, on_meta: bool = False, **settings: Any) -> Executor:
    torch.manual_seed(0)
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        task = Classification(net(), nn.CrossEntropyLoss())
    return Executor(task=task, data=Digits(batch_size=batch), optimizer=partial(torch.optim.Adam, lr=1e-2),
                    distribution=distribution, seed=3, callbacks=callbacks, **settings)


def full_weights(ex: Executor) -> dict[str, torch.Tensor]:
    """The unsharded weights (rank 0 under FSDP; every rank gathers), as plain CPU tensors."""
    if isinstance(ex.task, FSDPModule):
        state = get_model_state_dict(ex.task, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = ex.task.state_dict()
    return {k: v.detach().clone().cpu() for k, v in state.items()}


def local_bytes(ex: Executor) -> dict[str, int]:
    """Bytes this rank holds of parameters and optimizer state (a DTensor's local shard only)."""

    def size(t: torch.Tensor) -> int:
        local = t.to_local() if hasattr(t, "to_local") else t
        return local.numel() * local.element_size()

    assert ex.optimizer is not None
    params = sum(size(p) for p in ex.task.parameters())
    state = sum(size(v) for s in ex.optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0)
    return {"params": params, "optimizer": state}


def train(distribution: Distribution, batch: int, **settings: Any) -> dict[str, Any]:
    """8 Adam steps, then validation: val loss, weights, local bytes."""
    ex = _executor(distribution, batch, max_epochs=1, limit_train_batches=8, limit_val_batches=4, **settings)
    ex.fit()
    val = ex.validate()
    return {"val_loss": val["val/loss"], "weights": full_weights(ex), "bytes": local_bytes(ex)}


def train_rank0_init(distribution: Distribution, batch: int) -> dict[str, Any]:
    """``train`` of ``ScaledMLP``, built on the meta device on the ranks but 0 under FSDP's rank-0 init:
    val loss, weights, and this rank's buffers after training."""
    on_meta = bool(getattr(distribution, "rank0_init", False)) and distribution.rank > 0
    ex = _executor(distribution, batch, net=ScaledMLP, on_meta=on_meta, max_epochs=1, limit_train_batches=8,
                   limit_val_batches=4)
    ex.fit()
    val = ex.validate()
    buffers = {name: buffer.detach().clone() for name, buffer in ex.task.named_buffers()}
    return {"val_loss": val["val/loss"], "weights": full_weights(ex), "buffers": buffers, "on_meta": on_meta}


def train_bf16(distribution: Distribution, batch: int) -> dict[str, Any]:
    """``train`` under bf16-mixed: FSDP computes with bfloat16 parameters and reduces in float32."""
    if hasattr(distribution, "precision"):
        distribution.precision = "bf16-mixed"
    out = train(distribution, batch, precision="bf16-mixed")
    del out["weights"]
    return out


def train_hsdp(distribution: Distribution, batch: int) -> dict[str, Any]:
    """``train`` on a (2, 1) HSDP mesh: replicated over both ranks, each shard group one rank."""
    distribution.replicate = 2  # type: ignore[attr-defined]
    return train(distribution, batch)


def accumulate_clip(distribution: Distribution, batch: int) -> dict[str, Any]:
    """3 micro-batches per step, gradient norm clipped to 0.05: weights, reduce-scatters, the norm before clipping."""
    from torch.distributed.fsdp._fully_shard import _fsdp_param_group as group_module

    ex = _executor(distribution, batch, max_epochs=1, limit_train_batches=9, limit_val_batches=0,
                   accumulate_grad_batches=3, gradient_clip_val=0.05)
    reductions = []
    original = group_module.foreach_reduce

    def counting(*args: Any, **kwargs: Any) -> Any:
        reductions.append(1)
        return original(*args, **kwargs)

    norms: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(params: Any, max_norm: float, *args: Any, **kwargs: Any) -> Any:
        norm = clip(params, max_norm, *args, **kwargs)
        norms.append(float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm))
        return norm

    group_module.foreach_reduce = counting
    torch.nn.utils.clip_grad_norm_ = recording_clip  # type: ignore[assignment]
    try:
        ex.fit()
    finally:
        group_module.foreach_reduce = original
        torch.nn.utils.clip_grad_norm_ = clip
    units = sum(1 for m in ex.task.modules() if type(m).__name__.startswith("FSDP"))
    return {"weights": full_weights(ex), "reductions": len(reductions), "fsdp_modules": units,
            "steps": ex.state.global_step, "norms": norms}


def resume(distribution: Distribution, batch: int, ckpt: Path) -> dict[str, Any]:
    """Train 8 steps saving at step 4 (``ckpt``), then a fresh run resumed from it: both final weights."""
    reference = _executor(distribution, batch, [SnapshotAt(ckpt, 4)], max_epochs=1, limit_train_batches=8,
                          limit_val_batches=0)
    reference.fit()
    return {"reference": full_weights(reference), **resume_from(distribution, batch, ckpt)}


def resume_from(distribution: Distribution, batch: int, ckpt: Path) -> dict[str, Any]:
    """A run of 8 steps resumed from ``ckpt``: its final weights and step."""
    resumed = _executor(distribution, batch, max_epochs=1, limit_train_batches=8, limit_val_batches=0)
    resumed.fit(ckpt_path=str(ckpt))
    return {"resumed": full_weights(resumed), "resumed_step": resumed.state.global_step}


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Spawned entry: every scenario under FSDP and DDP on this rank; outputs saved to ``out_dir``."""
    from declarative_train.distributed import DDPDistribution, FSDPDistribution

    process = ddp_scenarios.rank_process(rank, world_size, port)
    kinds: dict[str, Callable[[], Any]] = {"fsdp": partial(FSDPDistribution, process, timeout_s=60, seed=3),
             "fsdp_full": partial(FSDPDistribution, process, timeout_s=60, seed=3, state_dict_type="full"),
             "fsdp_r0": partial(FSDPDistribution, process, timeout_s=60, seed=3, rank0_init=True),
             "ddp": partial(DDPDistribution, process, timeout_s=60, seed=3)}
    scenarios: dict[str, Callable[..., dict[str, Any]]] = {"train": train, "accumulate_clip": accumulate_clip,
                 "resume": partial(resume, ckpt=Path(out_dir) / "fsdp_step4.ckpt"),  # a sharded folder
                 "resume_full": partial(resume, ckpt=Path(out_dir) / "fsdp_full_step4.ckpt"),  # a single file
                 "train_recomputed": partial(train, activation_checkpointing=["Block"]), "train_bf16": train_bf16,
                 "train_hsdp": train_hsdp, "train_rank0_init": train_rank0_init,
                 # DDP's own scenarios under FSDP: metrics synced over ranks, the loss guard.
                 "evaluate": ddp_scenarios.evaluate, "nan_on_one_rank": ddp_scenarios.nan_on_one_rank}
    outputs: dict[str, Any] = {}
    for kind, make in kinds.items():
        for name, scenario in scenarios.items():
            if kind == "ddp" and name in ("resume", "resume_full", "train_recomputed", "train_hsdp", "evaluate",
                                          "nan_on_one_rank", "train_rank0_init"):
                continue  # FSDP-only, or covered by DDP's own tests
            if (kind == "fsdp_full") != (name == "resume_full"):
                continue  # full state dicts: their own resume only
            if kind == "fsdp_r0" and name != "train_rank0_init":
                continue  # rank-0 init: against the same model built on every rank
            os.environ["DTRAIN_JOB"] = f"{kind}-{name}"  # each scenario's process group under its own store prefix
            distribution = make()
            started = time.perf_counter()
            try:
                outputs[f"{kind}/{name}"] = scenario(distribution, GLOBAL_BATCH // world_size)
            finally:
                distribution.teardown()
            outputs[f"{kind}/{name}_s"] = time.perf_counter() - started
    torch.save(outputs, Path(out_dir) / f"rank{rank}.pt")
