"""Checkpoint save/load cost against a bare ``torch.save``/``torch.load`` of the same dict.

Run: ``python bench/bench_checkpoint.py [--skip-large] [--repeats N]``. For the default model (the
MLP of ``dtrain``'s default run) and a ~100M-parameter stack of Linear layers, both with Adam
state, it times:

* save: what the training loop waits for when ``ModelCheckpoint`` saves (its default
  ``write_in_background``: collect the state, NaN check, ``torch.save`` to a temp file; sealing
  with the integrity footer, fsync, rename and the folder's fsync follow on a thread) vs
  ``torch.save`` of the same dict to a new file (no fsync);
* save, durable: the same save waited for to the end (``Executor.save_checkpoint`` without
  ``background``, as ``write_last`` and users calling it get) vs ``torch.save`` + fsync;
* load: ``checkpoint.read`` (verify every byte's CRC, load with ``weights_only=True`` mapped
  from the file) vs ``torch.load(weights_only=True)``;
* restore: ``Executor.load_checkpoint`` (read + checks + model, optimizer, RNG, loop state) vs
  ``torch.load`` + ``model.load_state_dict`` + ``optimizer.load_state_dict``;

and file sizes. Times are medians of alternating runs, files in the page cache (same for both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from declarative_train import (  # noqa: E402
    Classification,
    Executor,
    Regression,
    checkpoint,  # noqa: E402
)
from declarative_train.data import Digits  # noqa: E402
from declarative_train.data.module import DataModule  # noqa: E402
from declarative_train.models import MLP  # noqa: E402


class RandomRegression(DataModule):
    """A few random rows, enough for one optimizer step."""

    def __init__(self, width: int) -> None:
        super().__init__(batch_size=8)
        self.width = width

    def setup(self) -> None:
        x = torch.randn(8, self.width)
        self.datasets = {"train": torch.utils.data.TensorDataset(x, x)}


def default_executor() -> Executor:
    task = Classification(MLP(64, [128, 64], 10, dropout=0.1), nn.CrossEntropyLoss())
    return Executor(task=task, data=Digits(batch_size=64), optimizer=partial(torch.optim.Adam, lr=1e-3),
                    max_steps=2, max_epochs=1, limit_val_batches=0)


def large_executor(width: int = 2048, layers: int = 24) -> Executor:
    net = nn.Sequential(*(nn.Linear(width, width) for _ in range(layers)))
    return Executor(task=Regression(net, nn.MSELoss()), data=RandomRegression(width),
                    optimizer=partial(torch.optim.Adam, lr=1e-4), max_steps=1, max_epochs=1)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench(name: str, ex: Executor, folder: Path, repeats: int) -> list[tuple[str, ...]]:
    ex.fit()  # optimizer state exists
    ours, bare = folder / "ours.ckpt", folder / "bare.ckpt"
    model, optimizer = ex.task, ex.optimizer
    assert optimizer is not None

    def save_ours() -> None:
        ex.save_checkpoint(str(ours), background=True)

    def save_ours_durable() -> None:
        ex.save_checkpoint(str(ours))

    def save_bare() -> None:
        torch.save(ex.training_state.collect(), bare)

    def save_bare_fsync() -> None:
        save_bare()
        fsync_file(bare)

    def restore_bare() -> None:
        state = torch.load(bare, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])

    samples: dict[str, list[float]] = {k: [] for k in ("save", "save_durable", "save_bare", "save_fsync", "load",
                                                       "load_bare", "restore", "restore_bare")}
    for _ in range(repeats):
        for key, fn, path in (("save", save_ours, ours), ("save_bare", save_bare, bare),
                              ("save_durable", save_ours_durable, ours), ("save_fsync", save_bare_fsync, bare)):
            ex.checkpoint_writer.wait()  # a background write never overlaps the next timing
            path.unlink(missing_ok=True)
            samples[key].append(timed(fn))
        ex.checkpoint_writer.wait()
        save_bare()
        samples["load"].append(timed(lambda: checkpoint.read(str(ours))))
        samples["load_bare"].append(timed(lambda: torch.load(bare, map_location="cpu", weights_only=True)))
        samples["restore"].append(timed(lambda: ex.load_checkpoint(str(ours))))
        samples["restore_bare"].append(timed(restore_bare))
    med = {k: statistics.median(v) for k, v in samples.items()}
    params = sum(p.numel() for p in model.parameters())
    size, bare_size = ours.stat().st_size, bare.stat().st_size
    label = f"{name} ({params / 1e6:.2f}M params + Adam)"

    def line(op: str, mine: float, theirs: float, extra: str = "") -> tuple[str, ...]:
        return (label, op, ms(mine), ms(theirs), f"{mine / theirs:.2f}x", extra)

    return [
        line("save (loop waits)", med["save"], med["save_bare"], "rest on the writer thread"),
        line("save, durable", med["save_durable"], med["save_fsync"], "vs bare torch.save + fsync"),
        line("load", med["load"], med["load_bare"]),
        line("restore", med["restore"], med["restore_bare"]),
        (label, "size", f"{size / 1e6:.3f} MB", f"{bare_size / 1e6:.3f} MB", f"{size / bare_size:.4f}x",
         f"+{size - bare_size} bytes"),
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="only the default model")
    parser.add_argument("--repeats", type=int, default=0, help="repeats (default: 100 small, 5 large)")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        rows += bench("default MLP", default_executor(), Path(tmp), args.repeats or 100)
        if not args.skip_large:
            rows += bench("Linear stack", large_executor(), Path(tmp), args.repeats or 5)
    header = ("model", "op", "ours", "bare torch", "ratio", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths)))


if __name__ == "__main__":
    main()
