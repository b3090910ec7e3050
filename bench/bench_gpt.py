"""Tokens/s of ``dtrain experiment=gpt_text`` vs a hand-written nanoGPT-style loop, each in its own process.

Both contenders train the same GPT (``declarative_train.models.GPT``: ``--n-layer`` blocks of width
``--n-embd``, a few million parameters) on the same bytes (the preset's Python-source file,
written once into the bench folder; the first 90% cut into blocks of ``--block-size``), batches of
``--batch-size`` blocks in a shuffled order, Adam (lr 3e-3) with gradient-norm clipping at 1.0
(the preset's), for ``--steps`` optimizer steps, one process per contender, single process
(``OMP_NUM_THREADS=--threads``, 1 by default: steadier on a shared machine).
Both write ``train/loss`` to TensorBoard every 10 steps; a process's seconds per step come from
the wall-clock stamps of those events from step ``--warmup`` on (steady state: after the first
steps, compilation and allocator warm-up; the median of the 10-step intervals), read back from
the event files the same way for both.

dtrain runs lean (``callbacks=none metrics=none trainer.limit_val_batches=0 test=false``): the
loop's cost, not validation's. A round starts both contenders once, in alternating order; the
ratio of a round is dtrain's tokens/s over the loop's, and the run reports the median ratio and
its spread over ``--rounds`` rounds.

Usage: ``python bench/bench_gpt.py [--rounds 5] [--steps 80] [--accelerator cpu|gpu] [--compile]``
and, run by the bench itself, ``python bench/bench_gpt.py hand --dir DIR --text FILE ...``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_EVERY = 10


# ---------------------------------------------------------------- the hand-written loop (own process)
def hand_main(args: argparse.Namespace) -> None:
    """nanoGPT's train.py reduced to what the dtrain contender does; TensorBoard files in ``dir/tb``."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from declarative_train.models import GPT

    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    torch.manual_seed(42)
    ids = torch.frombuffer(bytearray(Path(args.text).read_bytes()), dtype=torch.uint8).long()
    train = ids[:len(ids) - 2 * int(len(ids) * 0.05)]  # the preset's val/test fractions: 0.05 each
    count = (len(train) - 1) // args.block_size
    inputs = train[:count * args.block_size].view(count, args.block_size)
    targets = train[1:count * args.block_size + 1].view(count, args.block_size)
    model = GPT(256, args.block_size, args.n_layer, args.n_head, args.n_embd).to(device)
    if args.compile:
        model.compile()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    writer = SummaryWriter(str(Path(args.dir) / "tb"))
    step, epoch = 0, 0
    while step < args.steps:
        order = torch.randperm(count, generator=torch.Generator().manual_seed(epoch))
        for start in range(0, count, args.batch_size):
            index = order[start:start + args.batch_size]
            x, y = inputs[index].to(device, non_blocking=True), targets[index].to(device, non_blocking=True)
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step % LOG_EVERY == 0:
                writer.add_scalar("train/loss", loss.item(), step)  # the sync point, as dtrain's
            if step == args.steps:
                break
        epoch += 1
    writer.close()


# ---------------------------------------------------------------- the bench
def seconds_per_step(directory: Path, warmup: int) -> float:
    """Median seconds per step over the intervals between consecutive ``train/loss`` stamps from step
    ``warmup`` on (the median, not the mean: a burst of other load on a shared machine moves one
    interval, not the figure)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stamps: dict[int, float] = {}
    for events in directory.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if "train/loss" in accumulator.Tags()["scalars"]:
            stamps.update((e.step, e.wall_time) for e in accumulator.Scalars("train/loss"))
    steady = sorted(s for s in stamps if s >= warmup)
    if len(steady) < 2:
        raise RuntimeError(f"{directory}: {len(steady)} stamps from step {warmup} on, need 2 or more")
    return statistics.median((stamps[b] - stamps[a]) / (b - a) for a, b in zip(steady, steady[1:]))


def run_process(kind: str, args: argparse.Namespace, work: Path, text: Path) -> Path:
    """Run one contender in a fresh process; returns the folder its TensorBoard files are under."""
    directory = Path(tempfile.mkdtemp(dir=work, prefix=f"{kind}-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    sizes = ["--block-size", str(args.block_size), "--batch-size", str(args.batch_size), "--n-layer",
             str(args.n_layer), "--n-head", str(args.n_head), "--n-embd", str(args.n_embd)]
    if kind == "hand":
        command = [sys.executable, __file__, "hand", "--dir", str(directory), "--text", str(text), "--steps",
                   str(args.steps), "--accelerator", args.accelerator, *sizes, *(["--compile"] if args.compile else [])]
    else:
        command = [sys.executable, "-m", "declarative_train", "experiment=gpt_text", f"data.path={text}",
                   f"data.block_size={args.block_size}", f"data.batch_size={args.batch_size}",
                   f"model.net.n_layer={args.n_layer}", f"model.net.n_head={args.n_head}",
                   f"model.net.n_embd={args.n_embd}", f"trainer.max_steps={args.steps}", "trainer.max_epochs=1000",
                   f"trainer.log_every_n_steps={LOG_EVERY}", "callbacks=none", "~callbacks.model_checkpoint", "metrics=none",
                   "trainer.limit_val_batches=0", "test=false", f"accelerator={args.accelerator}",
                   f"trainer.compile={str(args.compile).lower()}", f"hydra.run.dir={directory}"]
    proc = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{kind} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return directory


def compare(args: argparse.Namespace, work: Path) -> None:
    from declarative_train.data.python_text import write_python_source_text

    text = write_python_source_text(work / "python_source.txt")
    tokens = args.batch_size * args.block_size
    rates: dict[str, list[float]] = {"hand": [], "dtrain": []}
    ratios = []
    for round_ in range(args.rounds):
        order = ("hand", "dtrain") if round_ % 2 == 0 else ("dtrain", "hand")
        for kind in order:
            rates[kind].append(tokens / seconds_per_step(run_process(kind, args, work, text), args.warmup))
        ratios.append(rates["dtrain"][-1] / rates["hand"][-1])
        print(f"round {round_ + 1}: hand {rates['hand'][-1]:8.0f} tok/s  dtrain {rates['dtrain'][-1]:8.0f} tok/s  "
              f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"hand   {_spread(rates['hand'])} tok/s\ndtrain {_spread(rates['dtrain'])} tok/s")
    print(f"ratio dtrain/hand: median {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}] "
          f"over {len(ratios)} rounds (target >= 0.97)")


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):8.0f} [{min(values):.0f}-{max(values):.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["compare", "hand"], default="compare")
    parser.add_argument("--dir", type=Path, help="hand: the folder to write into")
    parser.add_argument("--text", type=Path, help="hand: the text file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out at the start")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both contenders")
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile in both contenders")
    args = parser.parse_args()
    if args.command == "hand":
        hand_main(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        params = 12 * args.n_layer * args.n_embd ** 2 + (256 + args.block_size) * args.n_embd
        print(f"GPT ~{params / 1e6:.1f}M parameters, {args.batch_size}x{args.block_size} tokens a step, "
              f"{args.steps} steps a process (from step {args.warmup} timed), {args.accelerator}", flush=True)
        compare(args, Path(tmp))


if __name__ == "__main__":
    main()
