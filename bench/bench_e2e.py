"""What a user pays, end to end: whole ``dtrain`` processes vs a hand-written loop in its own process.

Both contenders train the default experiment's work (sklearn digits standardised, 70/15/15 split,
MLP 64-128-64-10 with dropout 0.1, Adam lr 1e-3, batch 64 shuffled: 20 steps an epoch) for
``--epochs`` epochs, each in a fresh process, and both write ``train/loss`` to TensorBoard every
10 steps. An epoch's time is the difference between the wall-clock stamps of the TensorBoard
events written at consecutive epochs' last steps, read back from the event files the same way for
both; a process's figure is the mean over the steady-state epochs (from ``--warmup`` on).

- lean: ``dtrain callbacks=none metrics=none trainer.limit_val_batches=0`` vs the bare loop.
- default: plain ``dtrain`` (validation with loss, accuracy and macro F1, checkpoints, LR monitor,
  progress log, model summary) vs a loop that also validates each epoch (loss, accuracy and macro
  F1 from one confusion matrix), logs those and the learning rate per epoch, and ``torch.save``\\ s
  model + optimizer once per epoch.

A run is ``--rounds`` rounds; each round starts every contender once, in a shuffled order, and the
run's ratio is the median over its rounds of dtrain's epoch time over the loop's in that round.
``--runs`` runs give the spread. ``--startup`` instead times fresh processes from start to their
first optimizer step: ``import torch`` alone, with ``torch._dynamo`` (which torch.optim imports at
an optimizer's construction and first step), the hand-written loop and ``dtrain``. ``--attribute`` times the default run with one component
removed at a time (the difference is what that component costs an epoch; TensorBoard itself stays,
as the clock; bench_export.py times the loggers).

Usage: ``python bench/bench_e2e.py [--runs 5] [--rounds 3] [--epochs 25] [--attribute | --startup]
[--dtrain-args data.batch_fetch=false]``
and, run by the bench itself, ``python bench/bench_e2e.py hand --mode lean|default --dir DIR``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG_EVERY = 10
TRAIN_SAMPLES = 1257
STEPS_PER_EPOCH = 20  # ceil(1257 train samples / 64)
LEAN = ["callbacks=none", "metrics=none", "trainer.limit_val_batches=0"]
#: ``--attribute``: the default run with one component removed, by name.
WITHOUT = {
    "progress_bar": ["~callbacks.progress_bar"],
    "lr_monitor": ["~callbacks.lr_monitor"],
    "model_checkpoint": ["~callbacks.model_checkpoint"],
    "model_summary": ["~callbacks.model_summary"],
    "f1 metric": ["~metrics.f1"],
    "all metrics": ["metrics=none", "~callbacks.model_checkpoint"],  # the checkpoint monitors val/acc
    "validation": ["trainer.limit_val_batches=0", "~callbacks.model_checkpoint", "metrics=none"],
    "batch fetch": ["data.batch_fetch=false"],  # negative: what fetching per batch saves
}


# ---------------------------------------------------------------- the hand-written loop (own process)
def hand_main(mode: str, directory: Path, epochs: int, first_step_file: Path | None = None) -> None:
    """Train as a user would by hand; TensorBoard files in ``directory/tb``.

    With ``first_step_file``, writes the wall-clock time of the first optimizer step there and stops.
    """
    import time

    import torch
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(42)
    digits = load_digits()
    features = torch.as_tensor(digits.data, dtype=torch.float32)
    target = torch.as_tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    n_hold = round(len(order) * 0.15)
    train_idx, val_idx = order[2 * n_hold:], order[n_hold:2 * n_hold]
    mean, std = features[train_idx].mean(0), features[train_idx].std(0)
    features = (features - mean) / torch.where(std > 1e-6, std, torch.ones_like(std))
    train = DataLoader(TensorDataset(features[train_idx], target[train_idx]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(features[val_idx], target[val_idx]), batch_size=64)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 64), nn.ReLU(),
                          nn.Dropout(0.1), nn.Linear(64, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    writer = SummaryWriter(str(directory / "tb"))
    step = 0
    for epoch in range(epochs):
        model.train()
        for inputs, labels in train:
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if first_step_file is not None:
                first_step_file.write_text(repr(time.time()))
                return
            if step % LOG_EVERY == 0:
                writer.add_scalar("train/loss", loss.item(), step)
        if mode == "default":
            _validate(model, loss_fn, val, writer, step)
            writer.add_scalar("lr-Adam", optimizer.param_groups[0]["lr"], step)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
                       directory / "last.ckpt")
    writer.close()


def _validate(model, loss_fn, loader, writer, step: int) -> None:  # type: ignore[no-untyped-def]
    import torch

    model.eval()
    confusion = torch.zeros(10, 10, dtype=torch.long)
    loss_sum = 0.0
    with torch.no_grad():
        for inputs, labels in loader:
            logits = model(inputs)
            loss_sum += float(loss_fn(logits, labels)) * len(labels)
            confusion += torch.bincount(labels * 10 + logits.argmax(1), minlength=100).view(10, 10)
    hits = confusion.diag().float()
    total = int(confusion.sum())
    writer.add_scalar("val/loss", loss_sum / total, step)
    writer.add_scalar("val/acc", float(hits.sum()) / total, step)
    writer.add_scalar("val/f1", float((2 * hits / (confusion.sum(0) + confusion.sum(1)).clamp_min(1)).mean()), step)


# ---------------------------------------------------------------- the bench
def epoch_seconds(directory: Path, warmup: int) -> float:
    """Mean seconds per steady-state epoch, from the stamps of the epochs' last ``train/loss`` events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stamps: dict[int, float] = {}
    for events in directory.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if "train/loss" in accumulator.Tags()["scalars"]:
            stamps.update((e.step, e.wall_time) for e in accumulator.Scalars("train/loss"))
    ends = [stamps[s] for s in sorted(stamps) if s % STEPS_PER_EPOCH == 0]
    if len(ends) <= warmup + 1:
        raise RuntimeError(f"{directory}: {len(ends)} epoch stamps, need more than warmup + 1 = {warmup + 1}")
    steady = ends[warmup - 1:] if warmup else ends
    return (steady[-1] - steady[0]) / (len(steady) - 1)


def run_process(kind: str, mode: str, work: Path, epochs: int, extra: Sequence[str] = ()) -> Path:
    """Run one contender in a fresh process; returns the folder its TensorBoard files are under."""
    directory = Path(tempfile.mkdtemp(dir=work, prefix=f"{kind}-{mode}-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if kind == "hand":
        command = [sys.executable, __file__, "hand", "--mode", mode, "--dir", str(directory), "--epochs", str(epochs)]
    else:
        command = [sys.executable, "-m", "declarative_train", f"trainer.max_epochs={epochs}", "test=false",
                   f"hydra.run.dir={directory}", *(LEAN if mode == "lean" else []), *extra]
    subprocess.run(command, cwd=directory, env=env, check=True, capture_output=True)
    return directory


def one_run(modes: Sequence[str], work: Path, rounds: int, epochs: int, warmup: int, seed: int,
            dtrain_args: Sequence[str] = ()) -> dict[str, list[float]]:
    """``rounds`` rounds of every contender in a shuffled order: seconds per epoch of each."""
    contenders = [(kind, mode) for mode in modes for kind in ("hand", "dtrain")]
    times: dict[str, list[float]] = {f"{k} {m}": [] for k, m in contenders}
    shuffle = random.Random(seed).shuffle
    for _ in range(rounds):
        shuffle(contenders)
        for kind, mode in contenders:
            extra = dtrain_args if kind == "dtrain" else ()
            times[f"{kind} {mode}"].append(epoch_seconds(run_process(kind, mode, work, epochs, extra), warmup))
    return times


def compare(args: argparse.Namespace, work: Path) -> None:
    modes = ("lean", "default")
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for run in range(args.runs):
        times = one_run(modes, work, args.rounds, args.epochs, args.warmup, seed=run, dtrain_args=args.dtrain_args)
        line = []
        for mode in modes:
            hand, ours = times[f"hand {mode}"], times[f"dtrain {mode}"]
            ratio = statistics.median(o / h for o, h in zip(ours, hand))
            ratios[mode].append(ratio)
            rates = f"{TRAIN_SAMPLES / statistics.median(hand):.0f} vs {TRAIN_SAMPLES / statistics.median(ours):.0f} samples/s"
            line.append(f"{mode}: hand {_ms(hand)} dtrain {_ms(ours)} ratio {ratio:.3f} ({rates})")
        print(f"run {run + 1}: " + " | ".join(line), flush=True)
    targets = {"lean": 1.03, "default": 1.10}
    for mode in modes:
        met = sum(r <= targets[mode] for r in ratios[mode])
        print(f"{mode:8} ratios {', '.join(f'{r:.3f}' for r in ratios[mode])}  (median {statistics.median(ratios[mode]):.3f}, "
              f"{met}/{len(ratios[mode])} runs <= {targets[mode]})")


def first_step_seconds(kind: str, work: Path) -> float:
    """Seconds from starting a fresh process to its first optimizer step (or to the end of an import)."""
    marker = Path(tempfile.mkdtemp(dir=work)) / "first_step"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    stamp = f"import time; from pathlib import Path; Path({str(marker)!r}).write_text(repr(time.time()))"
    commands = {
        "import torch": [sys.executable, "-c", f"import torch; {stamp}"],
        "import torch + torch._dynamo": [sys.executable, "-c", f"import torch, torch._dynamo; {stamp}"],
        "hand-written loop": [sys.executable, __file__, "hand", "--mode", "default", "--dir", str(marker.parent),
                              "--first-step-file", str(marker)],
        "dtrain": [sys.executable, "-m", "declarative_train", "test=false", f"hydra.run.dir={marker.parent}",
                   "user_packages=[bench]", "+callbacks.probe._target_=bench.first_step_probe.FirstStepProbe",
                   f"+callbacks.probe.path={marker}", "trainer.max_steps=1"],
    }
    started = time.time()
    subprocess.run(commands[kind], cwd=marker.parent, env=env, check=True, capture_output=True)
    return float(marker.read_text()) - started


def startup(args: argparse.Namespace, work: Path) -> None:
    """Process start to first optimizer step, fresh processes interleaved."""
    kinds = ["import torch", "import torch + torch._dynamo", "hand-written loop", "dtrain"]
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    shuffle = random.Random(0).shuffle
    for _ in range(args.rounds):
        shuffle(kinds)
        for kind in kinds:
            times[kind].append(first_step_seconds(kind, work))
    for kind, values in times.items():
        print(f"  {kind:<30} {statistics.median(values):6.3f} s [{min(values):.3f}-{max(values):.3f}]")
    over = [d - t for d, t in zip(times["dtrain"], times["import torch"])]
    over_dynamo = [d - t for d, t in zip(times["dtrain"], times["import torch + torch._dynamo"])]
    print(f"  dtrain - import torch          {statistics.median(over):6.3f} s [{min(over):.3f}-{max(over):.3f}]")
    print(f"  dtrain - (torch + _dynamo)     {statistics.median(over_dynamo):6.3f} s "
          f"[{min(over_dynamo):.3f}-{max(over_dynamo):.3f}]")


def attribute(args: argparse.Namespace, work: Path) -> None:
    """Per-epoch cost of each default component: default run vs the default run without it."""
    names = ["default", *WITHOUT]
    times: dict[str, list[float]] = {name: [] for name in names}
    shuffle = random.Random(0).shuffle
    for _ in range(args.rounds):
        shuffle(names)
        for name in names:
            extra = WITHOUT.get(name, [])
            times[name].append(epoch_seconds(run_process("dtrain", "default", work, args.epochs, extra), args.warmup))
    full = times["default"]
    print(f"default: {_ms(full)}")
    for name in WITHOUT:
        saved = [f - t for f, t in zip(full, times[name])]
        print(f"  without {name:<16} {_ms(times[name])}  saves {statistics.median(saved) * 1e3:6.2f} ms/epoch "
              f"[{min(saved) * 1e3:.2f} .. {max(saved) * 1e3:.2f}]")


def _ms(values: Sequence[float]) -> str:
    return f"{statistics.median(values) * 1e3:5.1f} ms [{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["compare", "hand"], default="compare")
    parser.add_argument("--mode", choices=["lean", "default"], default="default", help="hand: the work to do")
    parser.add_argument("--dir", type=Path, help="hand: the folder to write into")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3, help="epochs left out at the start")
    parser.add_argument("--attribute", action="store_true", help="cost of each default component instead")
    parser.add_argument("--startup", action="store_true", help="process start to first step instead")
    parser.add_argument("--first-step-file", type=Path, help="hand: write the first step's time here and stop")
    parser.add_argument("--dtrain-args", nargs="*", default=[], metavar="OVERRIDE",
                        help="extra overrides for the dtrain contender (e.g. data.batch_fetch=false)")
    args = parser.parse_args()
    if args.command == "hand":
        hand_main(args.mode, args.dir, args.epochs, args.first_step_file)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.epochs} epochs a process, epochs {args.warmup + 1}.. timed; {args.rounds} rounds a run", flush=True)
        (attribute if args.attribute else startup if args.startup else compare)(args, Path(tmp))


if __name__ == "__main__":
    main()
