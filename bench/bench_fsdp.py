"""FSDP2 on the CPU (gloo): the executor vs a hand-written FSDP2 loop, and memory per rank.

    .venv/bin/python bench/bench_fsdp.py [--steps 6 --repeats 3 --n-layer 16 --n-embd 512 --ranks 2]

(a) Step time of ``Executor`` + ``FSDPDistribution`` vs a hand-written FSDP2 loop (``fully_shard``
    on every ``TransformerBlock`` then the root, DistributedSampler, DataLoader, AdamW) in the same
    two processes, back to back in each repeat (alternating which goes first), same model, data
    and global batch. Target: ratio <= 1.05.
(b) Per-rank memory of each layout (below), each in ``--ranks`` fresh processes (default 2):
    parameters + gradients + optimizer state from the local tensors (a DTensor's ``to_local()``
    shard; gradients have the parameters' layout), the process's resident memory after the last
    step (``/proc/self/statm``), its peak before the first step (model built and sharded) and its
    peak over the whole run (``ru_maxrss``), all above the resident memory before the model was
    built; and the median step time of each.
(c) A sharded checkpoint of the trained FSDP model: the seconds the training loop waits for a
    synchronous save and for a background one (the shard copy), and until the background one
    is in place (``--parts c``).

The model is ``declarative_train.models.GPT`` (``--n-layer`` x ``--n-embd``; 16 x 512 is 50.5M
parameters) in a ``LanguageModel`` task on random byte tokens. A step time is the median of the
intervals between consecutive step ends (the first step is not counted), in wall-clock and in
CPU seconds of the process (gloo's threads included; other processes on the cores do not inflate it).
Layouts: ``ddp``; ``fsdp``, every rank building the full model before it is sharded (peak RSS
counts it); ``fsdp-r0``, FSDP's rank-0 init (``accelerator.fsdp.rank0_init``, dtrain's default):
rank 0 builds the model, the other ranks build it on the meta device and receive their shards;
``fsdp-r0+ac``, the same with activation checkpointing. The resident memory after the steps is
the steady state. The memory part runs its ranks with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at
128 KiB, so every tensor above it is a mapping of its own, returned to the system when freed:
resident memory is then the live memory. With glibc's default (a threshold that grows up to 32 MiB
as large blocks are freed) the transient buffers of each step (gathered parameters, unsharded
gradients) stay in the heap once freed, and the resident memory of every layout ends near the
same high water. tracemalloc is not used: it sees Python's allocations, not torch's tensor memory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from declarative_train.data import DataModule
from declarative_train.engine.events import Event
from declarative_train.models import GPT
from declarative_train.tasks import LanguageModel

BLOCK, VOCAB, SAMPLES, GLOBAL_BATCH = 64, 256, 2048, 8
#: Allocations above this size get their own mapping, returned to the system when freed (memory part).
MMAP_THRESHOLD = 128 * 1024


def dataset() -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(VOCAB, (SAMPLES, BLOCK + 1), generator=gen)
    return TensorDataset(tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous())


def make_net(args: argparse.Namespace) -> GPT:
    torch.manual_seed(0)
    return GPT(vocab_size=VOCAB, block_size=BLOCK, n_layer=args.n_layer, n_head=8, n_embd=args.n_embd)


def rss_mb() -> float:
    """Resident memory of this process now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Stamp = tuple[float, float]


def stamp() -> Stamp:
    """Wall-clock and CPU time of this process (its threads and gloo's included)."""
    return time.perf_counter(), time.process_time()


def median_step(stamps: list[Stamp]) -> Stamp:
    """Median wall and CPU seconds between consecutive step ends."""
    pairs = list(zip(stamps, stamps[1:]))
    return (statistics.median(b[0] - a[0] for a, b in pairs), statistics.median(b[1] - a[1] for a, b in pairs))


def local_mb(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Parameters, gradients (same layout) and optimizer state this rank holds, from the local tensors."""

    def size(t: torch.Tensor) -> int:
        local = t.to_local() if hasattr(t, "to_local") else t
        return local.numel() * local.element_size()

    params = sum(size(p) for p in model.parameters()) / 2**20
    state = sum(size(v) for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0) / 2**20
    return {"params": params, "grads": params, "optimizer": state}


def run_executor(distribution: Any, args: argparse.Namespace, on_meta: bool = False, **settings: Any) -> dict[str, Any]:
    """``on_meta``: build the model on the meta device (the ranks but 0 under FSDP's rank-0 init)."""
    from declarative_train import Executor

    data = DataModule(batch_size=GLOBAL_BATCH // dist.get_world_size())
    data.datasets = {"train": dataset()}
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        net = make_net(args)
    ex = Executor(task=LanguageModel(net), data=data, optimizer=partial(torch.optim.AdamW, lr=1e-4),
                  distribution=distribution, max_epochs=-1, max_steps=args.steps, limit_val_batches=0, **settings)
    stamps: list[Stamp] = []
    peaks: list[float] = []  # the peak before the first step: the model built, sharded, the data loaded
    ex.events.on(Event.FIT_START, lambda _: peaks.append(peak_rss_mb()))
    ex.events.on(Event.STEP_END, lambda _: stamps.append(stamp()))
    ex.fit()
    assert ex.optimizer is not None
    return {"step_s": median_step(stamps), "local_mb": local_mb(ex.task, ex.optimizer), "setup_peak_rss_mb": peaks[0]}


def run_hand_written(rank: int, world: int, args: argparse.Namespace) -> dict[str, Any]:
    """The FSDP2 loop one writes by hand with torch alone."""
    from torch.distributed.fsdp import fully_shard

    model = make_net(args)
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = dataset()
    sampler: DistributedSampler[Any] = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=GLOBAL_BATCH // world, sampler=sampler)
    stamps: list[Stamp] = []
    for inputs, targets in loader:
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(stamp())
        if len(stamps) == args.steps:
            break
    return {"step_s": median_step(stamps), "local_mb": local_mb(model, optimizer)}


def _join(rank: int, world: int, port: int) -> Any:
    from declarative_train.distributed.env import detect

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=world)
    return detect()


def _timing_rank(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    from declarative_train.distributed import FSDPDistribution

    process = _join(rank, world, port)
    ours, hand = [], []
    for repeat in range(args.repeats):  # alternate which runs first, so neither gets the warmer caches
        if repeat % 2:
            hand.append(run_hand_written(rank, world, args)["step_s"])
        ours.append(run_executor(FSDPDistribution(process, seed=0), args)["step_s"])
        if not repeat % 2:
            hand.append(run_hand_written(rank, world, args)["step_s"])
    dist.destroy_process_group()
    if rank == 0:
        torch.save({"ours": ours, "hand": hand}, out)


def _memory_rank(rank: int, world: int, port: int, args: argparse.Namespace, kind: str, out: str) -> None:
    from declarative_train.distributed import DDPDistribution, FSDPDistribution

    process = _join(rank, world, port)
    before = rss_mb()
    rank0_init = kind.startswith("fsdp-r0")
    distribution = (DDPDistribution(process, seed=0) if kind == "ddp"
                    else FSDPDistribution(process, seed=0, rank0_init=rank0_init))
    settings = {"activation_checkpointing": ["TransformerBlock"]} if kind.endswith("+ac") else {}
    result = run_executor(distribution, args, on_meta=rank0_init and rank > 0, **settings)
    result.update(rss_after_mb=rss_mb() - before, peak_rss_mb=peak_rss_mb() - before,
                  setup_peak_rss_mb=result["setup_peak_rss_mb"] - before)
    dist.destroy_process_group()
    torch.save(result, f"{out}.{rank}")


def _save_rank(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    """Sharded checkpoint saves of the trained FSDP model: synchronous vs background, per repeat."""
    from declarative_train import Executor
    from declarative_train.distributed import FSDPDistribution

    process = _join(rank, world, port)
    data = DataModule(batch_size=GLOBAL_BATCH // world)
    data.datasets = {"train": dataset()}
    ex = Executor(task=LanguageModel(make_net(args)), data=data, optimizer=partial(torch.optim.AdamW, lr=1e-4),
                  distribution=FSDPDistribution(process, seed=0), max_epochs=-1, max_steps=2, limit_val_batches=0)
    ex.fit()
    times: dict[str, list[float]] = {"sync": [], "background_loop": [], "background_total": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = ex.distribution.broadcast_object(tmp)  # rank 0's folder on every rank
        for repeat in range(args.repeats):
            started = time.perf_counter()
            ex.save_checkpoint(f"{tmp}/sync-{repeat}.ckpt")
            times["sync"].append(time.perf_counter() - started)
            started = time.perf_counter()
            ex.save_checkpoint(f"{tmp}/background-{repeat}.ckpt", background=True)
            times["background_loop"].append(time.perf_counter() - started)
            ex.flush_checkpoints()
            times["background_total"].append(time.perf_counter() - started)
        ex.distribution.barrier()
    dist.destroy_process_group()
    if rank == 0:
        torch.save(times, out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(fn: Any, args: tuple[Any, ...], ranks: int = 2) -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.pt")
        mp.spawn(fn, args=(ranks, free_port(), *args, out), nprocs=ranks)
        if Path(out).exists():
            return [torch.load(out, weights_only=False)]
        return [torch.load(f"{out}.{r}", weights_only=False) for r in range(ranks)]


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def _report_a(timing: dict[str, list[Stamp]]) -> None:
    print("\n(a) FSDP step time, executor vs hand-written FSDP2 loop (rank 0, back to back per repeat)")
    for what, index in (("wall", 0), ("CPU", 1)):
        ours, hand = [t[index] for t in timing["ours"]], [t[index] for t in timing["hand"]]
        ratios = [o / h for o, h in zip(ours, hand)]
        print(f"    {what:4} hand-written : {_spread(hand)}")
        print(f"    {what:4} executor     : {_spread(ours)}")
        print(f"    {what:4} ratio per repeat: {' '.join(f'{r:.3f}' for r in ratios)}; median "
              f"{statistics.median(ratios):.3f} (target <= 1.05)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-layer", type=int, default=16)
    parser.add_argument("--n-embd", type=int, default=512)
    parser.add_argument("--parts", default="ab")
    parser.add_argument("--ranks", type=int, default=2, help="ranks of the memory part (b)")
    args = parser.parse_args()
    params = sum(p.numel() for p in make_net(args).parameters())
    print(f"GPT {args.n_layer} x {args.n_embd} ({params / 1e6:.1f}M params), {BLOCK} tokens x global batch "
          f"{GLOBAL_BATCH}, 2 ranks x 1 thread, gloo, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}")
    if "a" in args.parts:
        (timing,) = _spawn(_timing_rank, (args,))
        _report_a(timing)
    if "c" in args.parts:
        (saves,) = _spawn(_save_rank, (args,))
        print("\n(c) sharded checkpoint save of the trained model (rank 0, per repeat)")
        for what, values in saves.items():
            print(f"    {what:17}: {_spread(values)}")
    if "b" in args.parts:
        print(f"\n(b) per-rank memory (MB) and step time, {args.ranks} ranks, fresh processes per layout")
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)  # read by glibc as each rank starts
        print(f"    {'layout':12} {'params':>8} {'grads':>8} {'optim':>8} {'sum':>8} {'RSS after':>10} {'setup peak':>10} "
              f"{'peak RSS':>9}  step")
        for kind in ("ddp", "fsdp", "fsdp-r0", "fsdp-r0+ac"):
            ranks = _spawn(_memory_rank, (args, kind), ranks=args.ranks)
            for rank, r in enumerate(ranks):
                m = r["local_mb"]
                total = m["params"] + m["grads"] + m["optimizer"]
                print(f"    {kind + ' r' + str(rank):12} {m['params']:8.1f} {m['grads']:8.1f} {m['optimizer']:8.1f} "
                      f"{total:8.1f} {r['rss_after_mb']:10.1f} {r['setup_peak_rss_mb']:10.1f} {r['peak_rss_mb']:9.1f}  {r['step_s'][0]:.3f} s wall, "
                      f"{r['step_s'][1]:.3f} s CPU")


if __name__ == "__main__":
    main()
