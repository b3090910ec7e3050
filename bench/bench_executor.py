"""Executor overhead vs a hand-written PyTorch loop, and ``dtrain`` startup time.

Same model (the default MLP), data (sklearn digits, batch 64, shuffled), optimizer (Adam), one
thread. Each repeat runs both contenders in a shuffled order; reports the median seconds per
epoch of >= 5 repeats, the ratio of medians, and the median of per-repeat ("paired") ratios.

- lean: the executor with no callbacks, loggers, metrics or validation vs the bare loop.
- default: TensorBoard every 10 steps, a checkpoint after each validation (top-1 + last.ckpt; one
  validation an epoch, or --validations N), val metrics (acc, macro f1), LR and progress, vs a
  hand-written loop doing the same work (SummaryWriter, a validation pass computing loss, accuracy
  and macro F1 from a confusion matrix, torch.save of model + optimizer to two files). The
  executor also writes the model summary, as ``callbacks=default`` does (the loop has none). Our checkpoints are also sealed and written atomically with
  fsync, on ModelCheckpoint's writer thread (fit's time includes waiting for the last one).

``--loggers tensorboard,csv,mlflow`` adds a third contender to the default mode: the executor with those
loggers instead of TensorBoard alone (the issue's target: <= 1.02x the TensorBoard-only epoch).

Usage: ``python bench/bench_executor.py [--repeats 7] [--epochs 5] [--validations 4] [--loggers tensorboard,csv]``
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
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from declarative_train import Classification, Executor  # noqa: E402
from declarative_train.callbacks import (  # noqa: E402
    LearningRateMonitor,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
)
from declarative_train.data import Digits  # noqa: E402
from declarative_train.loggers import CSVLogger, Logger, MLflowLogger, TensorBoardLogger  # noqa: E402
from declarative_train.metrics import Accuracy, F1Score  # noqa: E402
from declarative_train.models import MLP  # noqa: E402

LOG_EVERY = 10


def make_task() -> Classification:
    torch.manual_seed(0)
    return Classification(MLP(64, [128, 64], 10, dropout=0.1), torch.nn.CrossEntropyLoss())


def make_data() -> Digits:
    data = Digits(batch_size=64)
    data.setup()
    return data


def hand_loop(epochs: int, extras: bool, workdir: Path, validations: int = 1) -> float:
    """A plain PyTorch loop; with ``extras`` it also logs, validates and checkpoints.

    ``validations`` per epoch, each followed by a checkpoint (as ModelCheckpoint on ``val/acc``).
    """
    data = make_data()
    task = make_task()
    optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
    train_loader = data.dataloader("train", shuffle=True)
    val_loader = data.dataloader("val")
    every = max(1, len(train_loader) // validations)
    writer = None
    if extras:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(workdir / "hand_tb"))
    step = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        task.train()
        for batch_idx, (inputs, target) in enumerate(train_loader, 1):
            loss = task.loss(task(inputs), target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if writer is not None and step % LOG_EVERY == 0:
                writer.add_scalar("train/loss", loss.item(), step)
            if writer is not None and batch_idx % every == 0:
                _hand_validate(task, optimizer, val_loader, writer, step, epoch, workdir)
                task.train()
    if writer is not None:
        writer.close()
    return (time.perf_counter() - start) / epochs


def _hand_validate(task: Classification, optimizer: torch.optim.Optimizer, val_loader: Any, writer: Any,
                   step: int, epoch: int, workdir: Path) -> None:
    """Loss, accuracy and macro F1 from a confusion matrix, logged; then a checkpoint to two files."""
    task.eval()
    confmat = torch.zeros(10, 10, dtype=torch.long)
    loss_sum = 0.0
    with torch.no_grad():
        for inputs, target in val_loader:
            logits = task(inputs)
            loss_sum += float(task.loss(logits, target)) * len(target)
            confmat += torch.bincount(target * 10 + logits.argmax(1), minlength=100).view(10, 10)
    tp = confmat.diag().float()
    f1 = (2 * tp / (confmat.sum(0) + confmat.sum(1)).clamp_min(1)).mean()
    total = int(confmat.sum())
    writer.add_scalar("val/loss", loss_sum / total, step)
    writer.add_scalar("val/acc", float(tp.sum()) / total, step)
    writer.add_scalar("val/f1", float(f1), step)
    writer.add_scalar("lr-Adam", optimizer.param_groups[0]["lr"], step)
    state = {"model": task.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}
    torch.save(state, workdir / "hand.ckpt")
    torch.save(state, workdir / "hand_last.ckpt")


#: Loggers --loggers can name, each built into a run folder.
LOGGERS: dict[str, Callable[[Path], Logger]] = {
    "tensorboard": lambda run: TensorBoardLogger(str(run / "tb")),
    "csv": lambda run: CSVLogger(str(run)),
    "mlflow": lambda run: MLflowLogger(str(run), tracking_uri=f"sqlite:///{run}/mlflow.db"),
}


def executor_loop(epochs: int, extras: bool, workdir: Path, validations: int = 1,
                  loggers: tuple[str, ...] = ("tensorboard",)) -> float:
    data = make_data()
    kwargs: dict = {"limit_val_batches": 0}
    if extras:
        run = Path(tempfile.mkdtemp(dir=workdir))
        kwargs = {
            "metrics": {"acc": Accuracy(task="multiclass", num_classes=10),
                        "f1": F1Score(task="multiclass", num_classes=10, average="macro")},
            "callbacks": {"model_checkpoint": ModelCheckpoint(str(run / "checkpoints"), monitor="val/acc", mode="max"),
                          "lr_monitor": LearningRateMonitor(),
                          "progress_bar": ProgressBar(refresh_rate=10),
                          "model_summary": ModelSummary(save_dir=str(run))},
            "loggers": [LOGGERS[name](run) for name in loggers],
            "val_check_interval": 1.0 / validations,
        }
    ex = Executor(task=make_task(), data=data, optimizer=partial(torch.optim.Adam, lr=1e-3), max_epochs=epochs,
                  log_every_n_steps=LOG_EVERY, **kwargs)
    ex.setup()  # data loading and the TensorBoard import are startup, measured separately
    start = time.perf_counter()
    ex.fit()
    seconds = (time.perf_counter() - start) / epochs
    for logger in ex.loggers:
        logger.finalize()
    return seconds


def compare(name: str, contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds per epoch of each contender, plus ``"paired"``: the median of per-repeat ratios.

    Each repeat runs every contender once, in a shuffled order, so the two runs of a repeat see
    the same machine; the paired ratio cancels the slow swings of a shared machine's speed.
    """
    times: dict[str, list[float]] = {key: [] for key in contenders}
    order = list(contenders)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for key in order:
            times[key].append(contenders[key]())
    medians = {key: statistics.median(values) for key, values in times.items()}
    base_key = next(iter(contenders))
    print(f"\n{name}")
    for key, value in list(medians.items()):
        spread = f"[{min(times[key]) * 1e3:.1f}-{max(times[key]) * 1e3:.1f}]"
        paired = statistics.median(t / b for t, b in zip(times[key], times[base_key]))
        print(f"  {key:<28} {value * 1e3:8.2f} ms/epoch {spread:>16}  ratio {value / medians[base_key]:5.3f}"
              f"  paired {paired:5.3f}")
        if key != base_key:
            medians[f"paired {key}"] = paired
            medians.setdefault("paired", paired)  # the first contender after the base
    return medians


def startup() -> None:
    """Seconds from process start to the first optimizer step, and compose+validate+build."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code_torch = "import time; t=time.perf_counter(); import torch; print(time.perf_counter()-t)"
    import_torch = statistics.median(
        float(subprocess.run([sys.executable, "-c", code_torch], capture_output=True, text=True, env=env).stdout)
        for _ in range(3)
    )
    code_phases = f"""
import time, sys
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
sys.path.insert(0, {str(ROOT)!r})
from hydra import compose, initialize_config_dir
from declarative_train.cli import _register, config_dir
from declarative_train.config.validate import validate_config
from declarative_train.build import build
from omegaconf import open_dict
t2 = time.perf_counter()
_register()
with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
    cfg = compose("train")
with open_dict(cfg):
    cfg.paths.output_dir = "/tmp/bench_startup"
t3 = time.perf_counter()
validate_config(cfg)
t4 = time.perf_counter()
components = build(cfg)
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""
    phases = [list(map(float, subprocess.run([sys.executable, "-c", code_phases], capture_output=True, text=True,
                                             env=env).stdout.split())) for _ in range(3)]
    torch_s, imports_s, compose_s, validate_s, build_s = (statistics.median(p[i] for p in phases) for i in range(5))
    first_step = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            marker = Path(tmp) / "first_step"
            started = time.time()
            subprocess.run(
                [sys.executable, "-m", "declarative_train", "trainer.max_steps=1", "test=false", "logger=none",
                 "user_packages=[bench]", "+callbacks.probe._target_=bench.first_step_probe.FirstStepProbe",
                 f"+callbacks.probe.path={marker}"],
                cwd=tmp, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, check=True,
            )
            first_step.append(float(marker.read_text()) - started)
    print("\nstartup (median of 3 fresh processes)")
    print(f"  import torch alone               {import_torch:6.3f} s")
    print(f"  dtrain start -> first step       {statistics.median(first_step):6.3f} s")
    print(f"  import hydra + package           {imports_s:6.3f} s")
    print(f"  compose                          {compose_s:6.3f} s")
    print(f"  validate                         {validate_s:6.3f} s")
    print(f"  build (instantiate)              {build_s:6.3f} s")
    print(f"  compose + validate + build       {compose_s + validate_s + build_s:6.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--validations", type=int, default=1,
                        help="validations (each followed by a checkpoint) per epoch in default mode")
    parser.add_argument("--loggers", default="tensorboard",
                        help=f"comma-separated loggers for a third default-mode contender ({', '.join(LOGGERS)})")
    args = parser.parse_args()
    loggers = tuple(args.loggers.split(","))
    if unknown := [name for name in loggers if name not in LOGGERS]:
        parser.error(f"unknown loggers {unknown}; choose from {', '.join(LOGGERS)}")
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.epochs} epochs x {args.repeats} repeats")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lean = compare("lean (no logging, checkpoints, metrics, progress or validation)", {
            "hand-written loop": partial(hand_loop, args.epochs, False, work),
            "executor": partial(executor_loop, args.epochs, False, work),
        }, args.repeats)
        contenders = {
            "hand-written loop + extras": partial(hand_loop, args.epochs, True, work, args.validations),
            "executor": partial(executor_loop, args.epochs, True, work, args.validations),
        }
        if loggers != ("tensorboard",):
            contenders[f"executor, loggers {args.loggers}"] = partial(
                executor_loop, args.epochs, True, work, args.validations, loggers)
        default = compare(f"default (TensorBoard every 10 steps, {args.validations} validation(s) and checkpoint(s) "
                          "an epoch, val metrics, progress)", contenders, args.repeats)
    print("\nsummary")
    print(f"  lean ratio     {lean['executor'] / lean['hand-written loop']:.3f}x, paired {lean['paired']:.3f}x"
          "  (target <= 1.03x)")
    print(f"  default ratio  {default['executor'] / default['hand-written loop + extras']:.3f}x, paired "
          f"{default['paired']:.3f}x  (target <= 1.10x)")
    print(f"  default vs bare hand-written loop {default['executor'] / lean['hand-written loop']:.3f}x")
    if loggers != ("tensorboard",):
        key = f"executor, loggers {args.loggers}"
        print(f"  loggers {args.loggers} vs tensorboard alone {default[key] / default['executor']:.3f}x, paired "
              f"{default[f'paired {key}'] / default['paired']:.3f}x  (target <= 1.02x)")
    if not args.skip_startup:
        startup()


if __name__ == "__main__":
    main()
