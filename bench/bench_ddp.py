"""DDP on the CPU (gloo): our executor vs a hand-written DDP loop, scaling, and start-up time.

    .venv/bin/python bench/bench_ddp.py [--steps 150 --repeats 5 --startup-repeats 3]

(a) Step time of ``Executor`` + ``DDPDistribution`` vs a hand-written torch DDP loop (DDP,
    DistributedSampler, DataLoader, SGD), in the same two worker processes, interleaved, same
    model, data and global batch. Target: ratio <= 1.03.
(b) Training samples/s of the executor at one global batch: 2 workers x 1 thread vs 1 process x
    1 thread, and vs 1 process x 2 threads; plus the time one gradient all-reduce takes.
(c) Wall time from starting ``dtrain`` (a real process) to the end of its first optimizer step,
    with 2 workers vs 1 process (default digits job).

Every process runs its math on ``torch.set_num_threads(threads)`` threads. A repeat's step time
is the median of the intervals between consecutive step ends: set-up and the first step (DDP
builds its buckets there) are not counted, and the median ignores single preempted steps. Other
processes share these cores, so the load changes between repeats: (a) runs ours and the
hand-written loop back to back in each repeat and reports the median of the per-repeat ratios, the
ratio of the best repeats, and the ratio of rank 0's CPU time per step (which other processes on
the cores do not inflate); (b) reports the best repeat of each layout.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
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

from declarative_train import Classification, Executor
from declarative_train.data import DataModule
from declarative_train.engine.events import Event
from declarative_train.models import MLP

FEATURES, CLASSES, HIDDEN = 256, 10, [512, 512]
SAMPLES = 32768
GLOBAL_BATCH = 256
ROOT = Path(__file__).resolve().parent.parent


def dataset() -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(SAMPLES, FEATURES, generator=gen), torch.randint(CLASSES, (SAMPLES,), generator=gen))


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return MLP(FEATURES, HIDDEN, CLASSES)


Stamp = tuple[float, float]


def stamp() -> Stamp:
    """Wall-clock and CPU time of this process (its threads and gloo's included)."""
    return time.perf_counter(), time.process_time()


def step_times(stamps: list[Stamp]) -> Stamp:
    """Median wall and CPU seconds between consecutive step ends."""
    pairs = list(zip(stamps, stamps[1:]))
    return (statistics.median(b[0] - a[0] for a, b in pairs), statistics.median(b[1] - a[1] for a, b in pairs))


def run_executor(distribution: Any, batch: int, steps: int) -> Stamp:
    """Median wall and CPU step time of ``Executor.fit``."""
    data = DataModule(batch_size=batch)
    data.datasets = {"train": dataset()}
    ex = Executor(task=Classification(make_net(), nn.CrossEntropyLoss()), data=data,
                  optimizer=partial(torch.optim.SGD, lr=0.01, momentum=0.9), distribution=distribution,
                  max_epochs=-1, max_steps=steps, limit_val_batches=0)
    stamps: list[Stamp] = []
    ex.events.on(Event.STEP_END, lambda _: stamps.append(stamp()))
    ex.fit()
    return step_times(stamps)


def run_hand_written(rank: int, world: int, batch: int, steps: int) -> Stamp:
    """Median wall and CPU step time of the plain torch DDP loop."""
    model = nn.parallel.DistributedDataParallel(make_net())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    data = dataset()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=batch, sampler=sampler)
    stamps: list[Stamp] = []
    epoch = 0
    while len(stamps) < steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            stamps.append(stamp())
            if len(stamps) == steps:
                break
        epoch += 1
    return step_times(stamps)


def allreduce_ms(repeats: int = 50) -> float:
    """Milliseconds one all-reduce of the model's gradients (one flat float32 buffer) takes."""
    buffer = torch.zeros(sum(p.numel() for p in make_net().parameters()))
    dist.all_reduce(buffer)
    started = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(buffer)
    return (time.perf_counter() - started) / repeats * 1e3


def _ddp_rank(rank: int, world: int, port: int, steps: int, repeats: int, out: str) -> None:
    from declarative_train.distributed.ddp import DDPDistribution
    from declarative_train.distributed.env import detect

    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    process = detect()
    assert process is not None
    dist.init_process_group("gloo", rank=rank, world_size=world)
    batch = GLOBAL_BATCH // world
    ours: list[Stamp] = []  # per repeat: median wall and CPU step time
    hand: list[Stamp] = []
    for repeat in range(repeats):  # alternate which runs first, so neither gets the warmer caches
        if repeat % 2:
            hand.append(run_hand_written(rank, world, batch, steps))
        ours.append(run_executor(DDPDistribution(process, seed=0), batch, steps))
        if not repeat % 2:
            hand.append(run_hand_written(rank, world, batch, steps))
    result = {"ours": ours, "hand": hand, "allreduce_ms": allreduce_ms()}
    dist.destroy_process_group()
    if rank == 0:
        torch.save(result, out)


def _single(_: int, threads: int, steps: int, repeats: int, out: str) -> None:
    from declarative_train.distributed import SingleProcess

    torch.set_num_threads(threads)
    torch.save([run_executor(SingleProcess(), GLOBAL_BATCH, steps)[0] for _ in range(repeats)], out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(fn: Any, nprocs: int, args: tuple[Any, ...]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.pt")
        mp.spawn(fn, args=(*args, out), nprocs=nprocs)
        return torch.load(out, weights_only=False)


def seconds_to_first_step(devices: int, repeats: int) -> list[float]:
    """Wall time from starting ``dtrain`` to its first optimizer step, per repeat."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            stamp = Path(tmp) / "first_step"
            # Every rank writes the stamp; their first steps end together (the gradient all-reduce).
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
            args = [sys.executable, "-m", "declarative_train", f"accelerator.devices={devices}", "logger=none",
                    "trainer.max_epochs=1", "test=false", "user_packages=[bench]",
                    "+callbacks.probe._target_=bench.first_step_probe.FirstStepProbe", f"+callbacks.probe.path={stamp}"]
            started = time.time()
            subprocess.run(args, cwd=tmp, env=env, check=True, capture_output=True, timeout=300)
            times.append(float(stamp.read_text()) - started)
    return times


def _report_a(ddp: dict[str, Any]) -> None:
    med = statistics.median
    walls = {k: [t[0] for t in ddp[k]] for k in ("ours", "hand")}
    cpus = {k: [t[1] for t in ddp[k]] for k in ("ours", "hand")}
    ours, hand = min(walls["ours"]), min(walls["hand"])
    print("\n(a) DDP step time, 2 workers x 1 thread, same processes, back to back in each repeat")
    print(f"    hand-written torch DDP loop : {hand * 1e3:8.2f} ms/step wall (best repeat; median {med(walls['hand']) * 1e3:.2f}),"
          f" {med(cpus['hand']) * 1e3:.2f} ms CPU")
    print(f"    Executor + DDPDistribution  : {ours * 1e3:8.2f} ms/step wall (best repeat; median {med(walls['ours']) * 1e3:.2f}),"
          f" {med(cpus['ours']) * 1e3:.2f} ms CPU")
    print(f"    ours / hand-written, wall, median of per-repeat ratios: "
          f"{med(o / h for o, h in zip(walls['ours'], walls['hand'])):.3f}  (target <= 1.03)")
    print(f"    ours / hand-written, wall, best repeats               : {ours / hand:.3f}")
    print(f"    ours / hand-written, CPU time of rank 0 per step      : "
          f"{med(o / h for o, h in zip(cpus['ours'], cpus['hand'])):.3f}  (insensitive to other load)")


def _report_b(ddp: dict[str, Any], steps: int, repeats: int) -> None:
    ours = min(t[0] for t in ddp["ours"])
    one = min(_spawn(_single, 1, (1, steps, repeats)))
    two_threads = min(_spawn(_single, 1, (2, steps, repeats)))
    print("\n(b) samples/s of the executor, global batch", GLOBAL_BATCH, "(best repeat of each)")
    for name, seconds in (("1 process  x 1 thread ", one), ("1 process  x 2 threads", two_threads),
                          ("2 workers  x 1 thread ", ours)):
        print(f"    {name} : {GLOBAL_BATCH / seconds:10.0f} samples/s  ({seconds * 1e3:.2f} ms/step)")
    print(f"    2 workers vs 1 process x 1 thread : {one / ours:.2f}x")
    print(f"    2 workers vs 1 process x 2 threads: {two_threads / ours:.2f}x")
    print(f"    one gradient all-reduce (gloo, {ddp['allreduce_ms']:.2f} ms) = "
          f"{ddp['allreduce_ms'] / (ours * 1e3) * 100:.0f}% of a 2-worker step")


def _report_c(repeats: int) -> None:
    med = statistics.median
    single_start = seconds_to_first_step(1, repeats)
    ddp_start = seconds_to_first_step(2, repeats)
    print("\n(c) dtrain start -> end of first step (default digits job, median of", repeats, "runs)")
    print(f"    1 process : {med(single_start):6.2f} s   {' '.join(f'{t:.2f}' for t in single_start)}")
    print(f"    2 workers : {med(ddp_start):6.2f} s   {' '.join(f'{t:.2f}' for t in ddp_start)}")
    print(f"    extra for 2 workers: {med(ddp_start) - med(single_start):+.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--parts", default="abc", help="which measurements to run (b reuses a's run)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    print(f"model MLP {FEATURES}-{HIDDEN}-{CLASSES} ({sum(p.numel() for p in make_net().parameters()):,} params), "
          f"global batch {GLOBAL_BATCH}, {args.steps} steps x {args.repeats} repeats, gloo, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")

    if "a" in args.parts or "b" in args.parts:
        ddp = _spawn(_ddp_rank, 2, (2, _free_port(), args.steps, args.repeats))
    if "a" in args.parts:
        _report_a(ddp)
    if "b" in args.parts:
        _report_b(ddp, args.steps, args.repeats)
    if "c" in args.parts:
        _report_c(args.startup_repeats)


if __name__ == "__main__":
    main()
