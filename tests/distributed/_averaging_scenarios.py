"""EMA and SWA under FSDP2 and DDP on spawned gloo ranks (tests/distributed/test_fsdp_averaging.py).

Each scenario takes a distribution and the per-process batch size and returns plain CPU tensors
and numbers: whole (gathered) weights, so FSDP's and DDP's can be compared.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from declarative_train import Classification, Event, Executor
from declarative_train.callbacks import EMA, StochasticWeightAveraging
from declarative_train.data import Digits
from declarative_train.distributed import Distribution
from declarative_train.models import CNN
from tests.distributed import _scenarios as ddp_scenarios
from tests.distributed._fsdp_scenarios import GLOBAL_BATCH, ResidualMLP, SnapshotAt, full_weights

STEPS = 8
#: 2 epochs of 4 steps, validated after each: training goes on after a validation with the average.
EPOCHS: dict[str, Any] = {"max_epochs": 2, "limit_train_batches": STEPS // 2, "limit_val_batches": 2}


def _executor(distribution: Distribution, batch: int, net: nn.Module, callbacks: dict[str, Any],
              **settings: Any) -> Executor:
    task = Classification(net, nn.CrossEntropyLoss())
    return Executor(task=task, data=Digits(batch_size=batch), optimizer=partial(torch.optim.Adam, lr=1e-2),
                    distribution=distribution, seed=3, callbacks=callbacks, **settings)


def _ema_executor(distribution: Distribution, batch: int, ema: EMA, callbacks: dict[str, Any] | None = None) -> Executor:
    torch.manual_seed(0)
    return _executor(distribution, batch, ResidualMLP(), callbacks or {"ema": ema}, **EPOCHS)


def _averaged(ema: EMA) -> dict[str, torch.Tensor]:
    """The EMA's average, whole, by parameter name (a collective under FSDP)."""
    assert ema.averaged is not None
    return ema.slots.by_name([t.clone().cpu() for t in ema.slots.for_checkpoint(ema.averaged, whole=True)])


def ema_train(distribution: Distribution, batch: int) -> dict[str, Any]:
    """8 steps with EMA, validated after steps 4 and 8: the average, the training weights, the val loss during fit
    and after it, and the val loss of the same training without EMA."""
    ema = EMA(decay=0.8, update_every=2)
    ex = _ema_executor(distribution, batch, ema)
    ex.fit()
    during = ex.state.metrics["val/loss"]
    after = ex.validate()["val/loss"]  # fit ended with the average in the model
    out = {"averaged": _averaged(ema), "weights": full_weights(ex), "val_during_fit": during, "val_after_fit": after}
    ema.slots.swap_out()
    out["training"] = full_weights(ex)
    torch.manual_seed(0)  # the same training without EMA: the val loss of the training weights
    plain = _executor(distribution, batch, ResidualMLP(), {}, **EPOCHS)
    plain.fit()
    out["val_training"] = plain.state.metrics["val/loss"]
    return out


class AverageAt:
    """Records the EMA's whole average and the model's whole training weights after optimizer step ``step``."""

    def __init__(self, ema: EMA, step: int) -> None:
        self.ema, self.step = ema, step
        self.seen: dict[str, Any] = {}

    def attach(self, executor: Executor) -> None:
        executor.events.on(Event.STEP_CHECKPOINT, self._record, once=self.step)

    def _record(self, executor: Any) -> None:
        self.seen = {"averaged": _averaged(self.ema), "training": full_weights(executor)}


def ema_resume(distribution: Distribution, batch: int, ckpt: Path, use_for_checkpoint: bool) -> dict[str, Any]:
    """EMA over 8 steps saving at step 5 (``ckpt``), then a fresh run resumed from it: both runs' averages,
    training weights and update counts, and the average and weights at step 5."""
    ref_ema, res_ema = (EMA(decay=0.8, update_every=2, use_for_checkpoint=use_for_checkpoint) for _ in range(2))
    probe = AverageAt(ref_ema, 5)
    reference = _ema_executor(distribution, batch, ref_ema,
                              callbacks={"ema": ref_ema, "snapshot": SnapshotAt(ckpt, 5), "probe": probe})
    reference.fit()
    resumed = _ema_executor(distribution, batch, res_ema)
    resumed.fit(ckpt_path=str(ckpt))
    out: dict[str, Any] = {"at_step5": probe.seen, "resumed_step": resumed.state.global_step,
                           "updates": (ref_ema.num_updates, res_ema.num_updates)}
    for name, ex, ema in (("reference", reference, ref_ema), ("resumed", resumed, res_ema)):
        ema.slots.swap_out()
        out[name] = {"averaged": _averaged(ema), "training": full_weights(ex)}
    return out


def swa_train(distribution: Distribution, batch: int, ckpt: Path | None = None, snapshot_at: int = 10,
              resume: bool = False) -> dict[str, Any]:
    """SWA on a CNN with batch norm, 3 epochs of 4 steps averaged from the second: the whole weights (the
    average, BatchNorm statistics recomputed) and the test metrics; with ``ckpt`` saved at ``snapshot_at``,
    or resumed from it."""
    torch.manual_seed(6)
    swa = StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=1)
    callbacks: dict[str, Any] = {"swa": swa}
    if ckpt is not None and not resume:
        callbacks["snapshot"] = SnapshotAt(ckpt, snapshot_at)
    ex = _executor(distribution, batch, CNN([1, 8, 8], [8, 8], 10), callbacks, max_epochs=3, limit_train_batches=4,
                   limit_val_batches=2)
    ex.fit(ckpt_path=str(ckpt) if resume else None)
    return {"weights": full_weights(ex), "test": ex.test(), "n_averaged": swa.n_averaged}


def run_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """Spawned entry: every scenario under FSDP (sharded and full checkpoints) and DDP; outputs to ``out_dir``."""
    from declarative_train.distributed import DDPDistribution, FSDPDistribution

    process = ddp_scenarios.rank_process(rank, world_size, port)
    kinds: dict[str, Callable[[], Any]] = {
        "fsdp": partial(FSDPDistribution, process, timeout_s=60, seed=3),
        "fsdp_full": partial(FSDPDistribution, process, timeout_s=60, seed=3, state_dict_type="full"),
        "hsdp": partial(FSDPDistribution, process, timeout_s=60, seed=3, replicate=2),  # a (2, 1) mesh
        "ddp": partial(DDPDistribution, process, timeout_s=60, seed=3)}
    out = Path(out_dir)
    runs: list[tuple[str, str, Callable[..., dict[str, Any]]]] = [
        ("fsdp", "ema_train", ema_train), ("ddp", "ema_train", ema_train), ("hsdp", "ema_train", ema_train),
        ("fsdp", "ema_resume", partial(ema_resume, ckpt=out / "ema_sharded", use_for_checkpoint=True)),
        ("fsdp_full", "ema_resume", partial(ema_resume, ckpt=out / "ema_full.ckpt", use_for_checkpoint=True)),
        ("fsdp", "ema_resume_training_weights",
         partial(ema_resume, ckpt=out / "ema_sharded_training", use_for_checkpoint=False)),
        ("fsdp", "swa_train", partial(swa_train, ckpt=out / "swa_sharded")), ("ddp", "swa_train", swa_train),
        ("fsdp", "swa_resumed", partial(swa_train, ckpt=out / "swa_sharded", resume=True))]
    outputs: dict[str, Any] = {}
    for kind, name, scenario in runs:
        os.environ["DTRAIN_JOB"] = f"avg-{kind}-{name}"  # each scenario's process group under its own store prefix
        distribution = kinds[kind]()
        try:
            outputs[f"{kind}/{name}"] = scenario(distribution, GLOBAL_BATCH // world_size)
        finally:
            distribution.teardown()
    torch.save(outputs, Path(out_dir) / f"rank{rank}.pt")
