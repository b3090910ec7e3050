"""Exported models in their runtimes vs eager PyTorch, and what each logger costs per call.

Run: ``python bench/bench_export.py`` (about a minute on 2 cores). Prints two tables:

* latency of the default MLP and the digits CNN, exported to ONNX and run in onnxruntime (one
  intra-op thread, as eager PyTorch here), against eager PyTorch under ``torch.inference_mode``,
  for batches of 1 and 64: median and spread over rounds of repeated calls, contenders
  interleaved within each round;
* ``log_metrics`` with 5 scalars, per call, for ``TensorBoardLogger`` and ``CSVLogger`` (its
  buffered calls and the flush every 100 rows included).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import onnxruntime  # noqa: E402
import torch  # noqa: E402

from declarative_train.export import export_model  # noqa: E402
from declarative_train.loggers import CSVLogger, TensorBoardLogger  # noqa: E402
from declarative_train.models import CNN, MLP  # noqa: E402

ROUNDS, CALLS = 7, 200


def per_call_us(fn: Callable[[], object], calls: int = CALLS) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"


def onnx_latency(folder: Path) -> None:
    torch.set_num_threads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    nets = {"MLP 64-128-64-10": MLP(64, [128, 64], 10, dropout=0.1),
            "CNN [32, 64] on 8x8": CNN([1, 8, 8], [32, 64], 10, dropout=0.1)}
    print("| model | batch | eager PyTorch us | onnxruntime us | ratio ort/eager |")
    print("|---|---|---|---|---|")
    for name, net in nets.items():
        net.eval()
        path = folder / f"{name.split()[0]}.onnx"
        export_model(net, torch.randn(2, 64), torch.randn(3, 64), "onnx", path, tolerance=1e-5)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            x = torch.randn(batch, 64)
            feed = {"inputs": x.numpy()}

            def eager(x: torch.Tensor = x, net: torch.nn.Module = net) -> object:
                with torch.inference_mode():
                    return net(x)

            def ort(feed: dict[str, object] = feed, session: onnxruntime.InferenceSession = session) -> object:
                return session.run(None, feed)

            eager(), ort()  # warm up
            eager_us, ort_us, ratios = [], [], []
            for _ in range(ROUNDS):
                e, o = per_call_us(eager), per_call_us(ort)
                eager_us.append(e)
                ort_us.append(o)
                ratios.append(o / e)
            print(f"| {name} | {batch} | {spread(eager_us)} | {spread(ort_us)} | "
                  f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


def logger_cost(folder: Path) -> None:
    metrics = {f"train/m{i}": 0.1 * i for i in range(5)}
    loggers = {"TensorBoardLogger": TensorBoardLogger(save_dir=str(folder / "tb"), name="bench"),
               "CSVLogger (flush every 100 rows)": CSVLogger(save_dir=str(folder / "csv"))}
    print("\n| logger | log_metrics, 5 scalars, us per call |")
    print("|---|---|")
    costs: dict[str, list[float]] = {name: [] for name in loggers}
    for logger in loggers.values():
        logger.setup()
    step = 0
    for _ in range(ROUNDS):
        for name, logger in loggers.items():
            started = time.perf_counter()
            for _ in range(1000):
                step += 1
                logger.log_metrics(metrics, step)
            costs[name].append((time.perf_counter() - started) / 1000 * 1e6)
    for name, logger in loggers.items():
        logger.finalize()
        print(f"| {name} | {spread(costs[name])} |")


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        onnx_latency(Path(scratch))
        logger_cost(Path(scratch))


if __name__ == "__main__":
    main()
