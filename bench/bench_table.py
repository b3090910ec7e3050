"""``data=table`` at scale: loading a large table, and training throughput against a hand-written loop.

1. Loading: a table of ``--rows`` rows x 20 columns (16 float columns, 4 text columns of 8
   categories each) and an integer class column, as CSV and as Parquet. Each contender runs in a
   fresh process: ``pyarrow`` reading the file (the floor), and ``TableData.setup()`` (read,
   split, fit the encodings on the train split, encode every split into tensors). Reported:
   seconds and peak memory growth (peak RSS minus the RSS before reading), next to the size of
   the raw Arrow table. Targets: <= 1.5x pyarrow's time and <= 2x the raw table's memory.
2. Throughput: the default MLP trained on the encoded table's train split, batch 64, through
   the data module's loader (one indexing per batch) vs a hand-written loop over a plain
   ``DataLoader(TensorDataset)`` of the same tensors; interleaved rounds, samples per second.

Usage: ``python bench/bench_table.py [--rows 1000000] [--rounds 3] [--train-rows 20000]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
import pyarrow.csv, pyarrow.parquet
import torch  # imported before the baseline: both contenders pay it outside the measurement
from declarative_train.data import TableData

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

kind, path = sys.argv[1], sys.argv[2]
before = rss()
start = time.perf_counter()
if kind == "pyarrow":
    table = pyarrow.parquet.read_table(path) if path.endswith(".parquet") else pyarrow.csv.read_csv(path)
    raw = table.nbytes
else:
    data = TableData(path=path, target="label")
    data.setup()
    raw = 0
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"seconds": seconds, "peak": peak, "raw": raw}))
"""


def write_tables(rows: int, folder: Path) -> dict[str, Path]:
    """The benchmark table as CSV and Parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((rows, 16)).astype(np.float64)
    columns: dict[str, object] = {f"x{i}": numeric[:, i] for i in range(16)}
    for i in range(4):
        columns[f"c{i}"] = pa.array(rng.integers(0, 8, rows)).cast(pa.string())
    columns["label"] = (numeric[:, 0] + numeric[:, 1] > 0).astype(np.int64) + (numeric[:, 2] > 1)
    table = pa.table(columns)
    paths = {"csv": folder / "table.csv", "parquet": folder / "table.parquet"}
    pa_csv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"])
    return paths


def load(kind: str, path: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_loading(paths: dict[str, Path], rounds: int) -> None:
    print(f"\nloading ({rounds} rounds, fresh processes; medians, [min-max])")
    for fmt, path in paths.items():
        runs: dict[str, list[dict[str, float]]] = {"pyarrow": [], "table": []}
        for _ in range(rounds):
            for kind in random.sample(list(runs), 2):
                runs[kind].append(load(kind, path))
        raw = statistics.median(r["raw"] for r in runs["pyarrow"])
        arrow_s = [r["seconds"] for r in runs["pyarrow"]]
        ours_s = [r["seconds"] for r in runs["table"]]
        ratios = [o / a for o, a in zip(ours_s, arrow_s)]
        memory = [r["peak"] / raw for r in runs["table"]]
        print(f"  {fmt:8} raw table {raw / 2**20:6.0f} MiB | pyarrow {_s(arrow_s)} peak "
              f"{statistics.median(r['peak'] for r in runs['pyarrow']) / 2**20:5.0f} MiB | TableData {_s(ours_s)} peak "
              f"{statistics.median(r['peak'] for r in runs['table']) / 2**20:5.0f} MiB | time {_range(ratios)}x, "
              f"memory {_range(memory)}x the raw table")


def bench_throughput(path: Path, rounds: int, train_rows: int) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from declarative_train.data import TableData
    from declarative_train.models import MLP

    torch.set_num_threads(1)
    data = TableData(path=str(path), target="label", batch_size=64)
    data.setup()
    features, target = (t[:train_rows] for t in data.datasets["train"].tensors)
    data.datasets["train"] = TensorDataset(features, target)
    hand_loader = DataLoader(TensorDataset(features, target), batch_size=64, shuffle=True)
    ours_loader = data.dataloader("train", shuffle=True)

    def epoch(loader: DataLoader) -> float:
        torch.manual_seed(0)
        model = MLP(features.shape[1], [128, 64], int(target.max()) + 1, dropout=0.1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        start = time.perf_counter()
        for inputs, labels in loader:
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return len(features) / (time.perf_counter() - start)

    rates: dict[str, list[float]] = {"hand DataLoader(TensorDataset)": [], "data=table loader": []}
    loaders = {"hand DataLoader(TensorDataset)": hand_loader, "data=table loader": ours_loader}
    for _ in range(rounds):
        for name in random.sample(list(loaders), 2):
            rates[name].append(epoch(loaders[name]))
    print(f"\ntraining throughput, {len(features)} rows x {features.shape[1]} inputs, batch 64 ({rounds} rounds)")
    for name, values in rates.items():
        print(f"  {name:32} {statistics.median(values):8.0f} samples/s [{min(values):.0f}-{max(values):.0f}]")
    paired = [o / h for o, h in zip(rates["data=table loader"], rates["hand DataLoader(TensorDataset)"])]
    print(f"  ratio (ours / hand, paired)      {_range(paired)}")


def _s(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s"


def _range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=20_000, help="rows of the train split in the throughput part")
    args = parser.parse_args()
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_tables(args.rows, Path(tmp))
        print(f"{args.rows} rows x 20 columns + label written in {time.perf_counter() - started:.1f} s "
              f"(CSV {paths['csv'].stat().st_size / 2**20:.0f} MiB, Parquet {paths['parquet'].stat().st_size / 2**20:.0f} MiB)")
        bench_loading(paths, args.rounds)
        bench_throughput(paths["parquet"], args.rounds, args.train_rows)


if __name__ == "__main__":
    main()
