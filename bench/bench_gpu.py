"""Samples/s of the executor vs a hand-written CUDA loop (default model and data), per precision.

Both loops use the same pinned-memory DataLoader, non-blocking copies, Adam and autocast /
GradScaler settings; timed after a warm-up epoch, median of ``--repeats``.
Usage: ``python bench/bench_gpu.py [--device cuda] [--precisions 32 16-mixed bf16-mixed]``
(``--device cpu`` runs the same comparison on the CPU, to check the script anywhere).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from declarative_train import Classification, Executor  # noqa: E402
from declarative_train.accelerators import CPUAccelerator, CUDAAccelerator  # noqa: E402
from declarative_train.data import Digits  # noqa: E402
from declarative_train.models import MLP  # noqa: E402

AUTOCAST = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def _task() -> Classification:
    torch.manual_seed(0)
    return Classification(MLP(64, [128, 64], 10, dropout=0.1), torch.nn.CrossEntropyLoss())


def _data(pin: bool) -> Digits:
    data = Digits(batch_size=64, pin_memory=pin)
    data.setup()
    return data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop(device: torch.device, precision: str, epochs: int) -> float:
    data = _data(device.type == "cuda")
    task = _task().to(device)
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None
    loader = data.dataloader("train", shuffle=True)
    samples = 0
    start = 0.0
    for epoch in range(epochs + 1):  # epoch 0 warms up
        if epoch == 1:
            _sync(device)
            start, samples = time.perf_counter(), 0
        for inputs, target in loader:
            inputs = inputs.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            ctx = torch.autocast(device.type, dtype=AUTOCAST[precision]) if precision in AUTOCAST else contextlib.nullcontext()
            with ctx:
                loss = task.loss(task(inputs), target)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            samples += len(target)
    _sync(device)
    return samples / (time.perf_counter() - start)


def executor_loop(device: torch.device, precision: str, epochs: int) -> float:
    accelerator = CUDAAccelerator(device) if device.type == "cuda" else CPUAccelerator()
    ex = Executor(task=_task(), data=_data(device.type == "cuda"), optimizer=partial(torch.optim.Adam, lr=1e-3),
                  accelerator=accelerator, precision=precision, max_epochs=1, limit_val_batches=0)
    ex.fit()  # warm-up epoch
    ex.settings.max_epochs = 1 + epochs
    _sync(device)
    start = time.perf_counter()
    ex.fit()
    _sync(device)
    return (ex.state.num_train_batches * 64 * epochs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["32", "16-mixed", "bf16-mixed"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {args.epochs} epochs x {args.repeats} repeats (median)")
    print(f"{'precision':<12} {'hand samples/s':>15} {'executor samples/s':>19} {'time ratio':>11}")
    for precision in args.precisions:
        hand, ours = [], []
        for _ in range(args.repeats):
            hand.append(hand_loop(device, precision, args.epochs))
            ours.append(executor_loop(device, precision, args.epochs))
        h, o = statistics.median(hand), statistics.median(ours)
        print(f"{precision:<12} {h:15.0f} {o:19.0f} {h / o:11.3f}")


if __name__ == "__main__":
    main()
