"""Steps/s of an MLP on sklearn's digits under torch-xla: hand-written loop vs XLAAccelerator.

Run in the XLA venv (scripts/xla_env.sh) with PJRT_DEVICE=CPU (the default here):

    $(scripts/xla_env.sh | tail -1)/bin/python bench/bench_xla.py [--steps 300 --repeats 5]

Every runner trains the same model on the same fixed-shape batches for ``--steps`` steps and
returns (seconds, compilations). A runner is a function ``(model, optimizer, batches) ->
compilations`` registered in ``RUNNERS``: add one there (e.g. the full executor) to compare it.
The first runner is the baseline of the printed ratios. Each repeat builds a fresh model; an
untimed warm-up run of each runner pays the compilations, then the timed repeats interleave.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("PJRT_DEVICE", "CPU")

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

Batches = list[tuple[torch.Tensor, torch.Tensor]]
Runner = Callable[[torch.nn.Module, torch.optim.Optimizer, Batches], None]


def digits_batches(batch_size: int) -> Batches:
    """Standardised digits cut into fixed-size CPU batches (the remainder is dropped)."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(StandardScaler().fit_transform(x), dtype=torch.float32)
    y = torch.tensor(y)
    n = len(x) // batch_size * batch_size
    return list(zip(x[:n].split(batch_size), y[:n].split(batch_size)))


def make_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )


def hand_written(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Batches) -> None:
    """The loop as the torch-xla docs write it."""
    import torch_xla
    import torch_xla.core.xla_model as xm

    device = torch_xla.device()
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        xm.optimizer_step(optimizer)
        torch_xla.sync()


def via_accelerator(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Batches) -> None:
    """The same loop through XLAAccelerator's protocol methods."""
    acc = ACCELERATOR
    for step, batch in enumerate(batches):
        x, y = acc.to_device(batch)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        acc.optimizer_step(optimizer)
        acc.mark_step()
        acc.warn_if_recompiling(step)


def via_executor(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Batches) -> None:
    """The full executor (events, precision, accelerator, MpDeviceLoader) on the same batches."""
    from declarative_train import Classification, Executor
    from declarative_train.data import DataModule

    class FixedBatches(DataModule):
        def setup(self) -> None:
            self.datasets = {"train": batches}  # type: ignore[dict-item]

        def dataloader(self, split: str, **_: object) -> Batches:  # type: ignore[override]
            return batches

    task = Classification(model, torch.nn.CrossEntropyLoss())
    ex = Executor(task=task, data=FixedBatches(), optimizer=lambda _: optimizer, accelerator=ACCELERATOR,
                  max_epochs=1, max_steps=len(batches), limit_val_batches=0, log_every_n_steps=50)
    ex.fit()


RUNNERS: dict[str, Runner] = {
    "hand_written": hand_written,
    "xla_accelerator": via_accelerator,
    "executor": via_executor,
}
ACCELERATOR = None  # set in main(): the runners share one set-up accelerator


def timed_run(runner: Runner, device: torch.device, batches: Batches) -> tuple[float, int]:
    """(seconds, compilations) of one run of ``runner`` with a fresh model and optimizer."""
    import torch_xla

    from declarative_train.accelerators.xla import compile_count

    torch.manual_seed(0)
    model = make_model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    torch_xla.sync(wait=True)
    before = compile_count()
    start = time.perf_counter()
    runner(model, optimizer, batches)
    torch_xla.sync(wait=True)  # wait for the last step's execution
    return time.perf_counter() - start, compile_count() - before


def main() -> None:
    global ACCELERATOR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from declarative_train.accelerators.xla import XLAAccelerator

    ACCELERATOR = XLAAccelerator(recompile_warmup_steps=5)
    ACCELERATOR.setup()
    device = ACCELERATOR.device
    base = digits_batches(args.batch_size)
    batches = [base[i % len(base)] for i in range(args.steps)]
    print(f"device: {ACCELERATOR.describe()}; torch {torch.__version__}; "
          f"{args.steps} steps of batch {args.batch_size}; median of {args.repeats} repeats")

    # Warm up every runner first, then interleave the timed repeats so that drift of the
    # machine (other load, frequency) spreads over all runners alike.
    warmup = {name: timed_run(runner, device, batches)[1] for name, runner in RUNNERS.items()}
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in RUNNERS}
    for _ in range(args.repeats):
        for name, runner in RUNNERS.items():
            runs[name].append(timed_run(runner, device, batches))
    results: dict[str, tuple[float, int, int]] = {}
    for name, timed in runs.items():
        median = statistics.median(seconds for seconds, _ in timed)
        results[name] = (args.steps / median, warmup[name], max(c for _, c in timed))
    baseline = next(iter(results.values()))[0]
    print(f"{'runner':<18} {'steps/s':>9} {'ratio':>6} {'compiles(warm-up)':>18} {'compiles(run)':>14}")
    for name, (rate, warm, run) in results.items():
        print(f"{name:<18} {rate:>9.1f} {rate / baseline:>6.2f} {warm:>18d} {run:>14d}")


if __name__ == "__main__":
    main()
