"""``data=table`` at scale: loading a large table, and training throughput against a hand-written loop.

1. Loading: a table of ``--rows`` rows x 20 columns (16 float columns, 4 text columns of 8
   categories each, ``k0``..``k7``) and an integer class column, as CSV and as Parquet. Each
   contender runs in a fresh process: ``pyarrow`` reading the file (``pyarrow.csv.read_csv``,
   ``pyarrow.parquet.read_table``: the floor), and ``TableData.setup()`` (read, split, fit the
   encodings on the train split, encode the table's columns compactly: standardised float32
   numbers and text category indices, from which each batch's 16 + 4 x 8 = 48 inputs are made
   when it is fetched).
   Measures, all in the child process:

   - time: wall seconds of the load alone. The modules either side imports lazily (torch,
     pyarrow.compute, pyarrow.dataset and pandas, which ``pq.read_table`` and ``pa.array`` import)
     are imported before the clock starts: a once-per-process cost, not a cost of the table.
   - peak: the peak resident set (``VmHWM``, reset to the current RSS through
     ``/proc/self/clear_refs`` just before the load) minus the RSS just before the load: every
     byte the load held at its highest point (Arrow's memory pool, numpy, torch, allocator slack).
   - raw table: ``Table.nbytes`` of pyarrow's read (every buffer: values, string offsets, validity
     bitmaps). What the splits hold once loaded (encoded columns, targets, each split's row
     indices) is printed next to it: a load that keeps it cannot peak below its size.

   Targets: <= 1.5x pyarrow's time and <= 2x the raw table's memory; pyarrow's own peak is shown
   as a ratio too.

   Rounds and the control: each round runs every contender ``--repeats`` times (3), interleaved in
   a random order, and takes each contender's median of its runs; the time ratio is reported per
   round, and over single runs paired in order. pyarrow runs twice in each slot, the second run
   ("pyarrow again") as a control: its ratio to the first is what this machine's noise alone
   makes of a ratio. One run each is too noisy to hold a 1.5x target to: on this machine the
   control's single runs (Parquet, pyarrow against itself, four benches) ranged 0.30-1.82x, 2-3
   pairs of each 24-48 over 1.5x with no difference at all; a round's median of 3 runs narrowed
   the control to 0.69-1.40x.
2. Throughput: the default MLP trained on the encoded table's train split, batch 64, through
   the data module's loader (each batch's inputs made from the encoded columns when it is
   fetched) vs a hand-written loop over a plain ``DataLoader(TensorDataset)`` of the same inputs,
   encoded whole beforehand; interleaved rounds, samples per second.

Memory is made resident before each clock starts: on this machine (a KVM guest whose balloon
device reports freed memory to the host) a page the host has taken back costs tens of microseconds
at its first touch instead of a fraction of one: a fresh 192 MB buffer took 0.02 s or 0.75-1.5 s,
by chance, and with cold memory a round's ratio swung from 0.4x to 3x with whichever contender met
such pages (pyarrow's Parquet read took 0.17-1.65 s, its CSV read 3.7-4.8 s instead of about 1 s).
Each child writes and frees ``--resident-mib`` (1 GiB) first, both contenders alike; that steadies
the times (pyarrow's Parquet read 0.13-0.19 s) but not every page (memory freed in 2 MB blocks goes
back to the host within seconds). ``--cold`` measures without, as earlier versions did. The
``faults`` line counts minor page faults (numpy asks for huge pages for arrays from 4 MiB, and
pyarrow's pool, mimalloc, maps its memory in huge pages: few faults, each a 2 MB page; smaller
numpy arrays take 4 KB pages, a fault each).

A third contender, ``read``, is TableData's reading of a whole file alone
(``table_read.read_table``: CSV in 16 MB parts parsed by ``read_csv`` on two threads, Parquet
without pre-buffering and its text columns as dictionaries), so that the encoding's share shows.
(TableData reads a Parquet file a column at a time while it encodes the columns read, unless rows
with missing values are dropped.) By default the children leave ``OMP_NUM_THREADS`` unset, so that
pyarrow reads on every core, and TableData reads and encodes on two threads of its own (not
OpenMP's): the same thread budget for both on this 2-core machine, the comparison the target is
held to. ``--omp-threads 1`` also sets pyarrow's ``cpu_count`` to one (pyarrow then reads on one
thread, TableData still on two); the ``cpu s`` line, all threads summed, is the ratio a busy
machine shows.

Earlier versions of this bench wrote the text columns as the digits 0-7, which a CSV reader takes
for integers (the CSV case had no text column: 20 inputs), timed the lazy imports with the load,
took the peak from ``ru_maxrss`` (the process's lifetime peak, imports included), and ran each
contender once per round, without the control.

Usage: ``python bench/bench_table.py [--rows 1000000] [--rounds 3] [--repeats 3] [--formats csv,parquet]
[--cold] [--omp-threads 1|N|unset] [--train-rows 20000] [--skip-throughput]``
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
import json, os, resource, sys, time
import pyarrow.compute, pyarrow.csv, pyarrow.dataset, pyarrow.parquet
import torch  # imported before the baseline: both contenders pay it outside the measurement
try:
    import pandas  # imported by pyarrow.parquet.read_table (through pyarrow.dataset) and by pa.array
except ImportError:
    pass
from declarative_train.data import TableData

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def high_water_mark():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

kind, path, resident = sys.argv[1], sys.argv[2], int(sys.argv[3])
if resident:  # pages the host has taken back are slow to touch again (see --cold): give the kernel warm ones
    import numpy
    numpy.ones(resident, numpy.uint8)  # written, then freed (unmapped) at once
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the high-water mark restarts from the current RSS
before = rss()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start, cpu = time.perf_counter(), os.times()
if kind == "pyarrow":
    table = pyarrow.parquet.read_table(path) if path.endswith(".parquet") else pyarrow.csv.read_csv(path)
    raw, encoded = table.nbytes, 0
elif kind == "read":
    from declarative_train.data.table_read import read_table
    table = read_table(path)
    raw, encoded = table.nbytes, 0
else:
    data = TableData(path=path, target="label")
    data.setup()
    raw = 0
seconds = time.perf_counter() - start
if kind == "table":  # what the splits hold: each table's encoded columns and targets once, each split's rows
    held = {id(a): a.nbytes for d in data.datasets.values() for a in (d.columns.numbers, d.columns.codes, d.targets, d.rows)}
    encoded = sum(held.values())
cpu = sum(os.times()[:2]) - sum(cpu[:2])  # user + system seconds of every thread: less swayed by a busy machine
peak = high_water_mark() - before
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak": peak, "raw": raw, "encoded": encoded, "faults": faults}))
"""


def write_tables(rows: int, folder: Path) -> dict[str, Path]:
    """The benchmark table as CSV and Parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((rows, 16)).astype(np.float64)
    columns: dict[str, object] = {f"x{i}": numeric[:, i] for i in range(16)}
    for i in range(4):
        columns[f"c{i}"] = pc.binary_join_element_wise("k", pa.array(rng.integers(0, 8, rows)).cast(pa.string()), "")
    columns["label"] = (numeric[:, 0] + numeric[:, 1] > 0).astype(np.int64) + (numeric[:, 2] > 1)
    table = pa.table(columns)
    paths = {"csv": folder / "table.csv", "parquet": folder / "table.parquet"}
    pa_csv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"])
    return paths


#: The loading contenders, each a kind of child run: pyarrow twice, its second run the control
#: (what the machine's noise alone makes of a ratio).
CONTENDERS = {"pyarrow": "pyarrow", "pyarrow again": "pyarrow", "read": "read", "table": "table"}
#: The loading time target, as a ratio to pyarrow's.
TIME_TARGET = 1.5


def load(kind: str, path: Path, resident: int, omp_threads: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    if omp_threads != "unset":
        env["OMP_NUM_THREADS"] = omp_threads
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path), str(resident)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_loading(paths: dict[str, Path], rounds: int, repeats: int, resident: int, omp_threads: str) -> None:
    memory = f"{resident / 2**20:.0f} MiB made resident first" if resident else "cold memory"
    threads = "unset (pyarrow uses every core)" if omp_threads == "unset" else omp_threads
    print(f"\nloading ({rounds} rounds of {repeats} runs of each contender, fresh processes, {memory}, "
          f"OMP_NUM_THREADS {threads}; medians, [min-max])")
    for fmt, path in paths.items():
        runs: dict[str, list[list[dict[str, float]]]] = {kind: [[] for _ in range(rounds)] for kind in CONTENDERS}
        for index in range(rounds):  # per contender, per round: its runs
            for _ in range(repeats):
                for kind in random.sample(list(CONTENDERS), len(CONTENDERS)):
                    runs[kind][index].append(load(CONTENDERS[kind], path, resident, omp_threads))
        every = {kind: [run for round_runs in by_round for run in round_runs] for kind, by_round in runs.items()}
        # a round's time of a contender: the median of its runs in that round
        by_round = {kind: [statistics.median(run["seconds"] for run in round_runs) for round_runs in values]
                    for kind, values in runs.items()}
        raw = statistics.median(r["raw"] for r in every["pyarrow"])
        encoded = every["table"][0]["encoded"]
        arrow_peak = [r["peak"] for r in every["pyarrow"]]
        ours_peak = [r["peak"] for r in every["table"]]
        print(f"  {fmt:8} raw table {raw / 2**20:4.0f} MiB, held by the splits {encoded / 2**20:4.0f} "
              f"MiB ({encoded / raw:.2f}x the raw table)")
        print(f"           pyarrow   {_s([r['seconds'] for r in every['pyarrow']])}, peak "
              f"{_range([p / 2**20 for p in arrow_peak], 0)} MiB = {_range([p / raw for p in arrow_peak])}x the raw table")
        print(f"           TableData {_s([r['seconds'] for r in every['table']])}, peak "
              f"{_range([p / 2**20 for p in ours_peak], 0)} MiB = {_range([p / raw for p in ours_peak])}x the raw "
              f"table, {_range([o / a for o, a in zip(ours_peak, arrow_peak)])}x pyarrow's peak")
        print(f"           read only {_s([r['seconds'] for r in every['read']])}, peak "
              f"{_range([r['peak'] / 2**20 for r in every['read']], 0)} MiB")
        ratios = [o / a for o, a in zip(by_round["table"], by_round["pyarrow"])]
        control = [o / a for o, a in zip(by_round["pyarrow again"], by_round["pyarrow"])]
        print(f"           time      {_range(ratios)}x pyarrow's, "
              f"{_range([o / a for o, a in zip(by_round['table'], by_round['read'])])}x the read alone "
              f"(by round: each contender's median of its {repeats} runs)")
        print(f"           by round  {' '.join(f'{r:.2f}' for r in ratios)}")
        print(f"           control   pyarrow again {_range(control)}x pyarrow's by round: "
              f"{' '.join(f'{r:.2f}' for r in control)}")
        single = [o["seconds"] / a["seconds"] for o, a in zip(every["table"], every["pyarrow"])]
        single_control = [o["seconds"] / a["seconds"] for o, a in zip(every["pyarrow again"], every["pyarrow"])]
        print(f"           run pairs {_range(single)}x pyarrow's, {sum(r > TIME_TARGET for r in single)} of "
              f"{len(single)} over {TIME_TARGET}x; the control {_range(single_control)}x, "
              f"{sum(r > TIME_TARGET for r in single_control)} over {TIME_TARGET}x (one run each, paired in order)")
        faults = {kind: statistics.median(r["faults"] for r in values) for kind, values in every.items()}
        print(f"           faults    pyarrow {faults['pyarrow']:.0f}, read only {faults['read']:.0f}, "
              f"TableData {faults['table']:.0f} (minor page faults, medians)")
        cpu = {kind: [r["cpu"] for r in values] for kind, values in every.items()}
        print(f"           cpu s     pyarrow {_range(cpu['pyarrow'])}, read only {_range(cpu['read'])}, "
              f"TableData {_range(cpu['table'])}: {_range([o / a for o, a in zip(cpu['table'], cpu['pyarrow']) if a])}x")


def bench_throughput(path: Path, rounds: int, train_rows: int) -> None:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from declarative_train.data import TableData
    from declarative_train.data.table_splits import TableSplit
    from declarative_train.models import MLP

    torch.set_num_threads(1)
    data = TableData(path=str(path), target="label", batch_size=64)
    data.setup()
    train = data.datasets["train"]
    assert isinstance(train, TableSplit)
    data.datasets["train"] = train = train.head(train_rows)
    features, target = train.tensors  # the same rows, encoded whole, for the hand-written loop
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
    return f"{_range(values)} s"


def _range(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each loading contender per round; a round's time is their median")
    parser.add_argument("--train-rows", type=int, default=20_000, help="rows of the train split in the throughput part")
    parser.add_argument("--skip-throughput", action="store_true", help="measure loading only")
    parser.add_argument("--formats", default="csv,parquet", help="the file formats to load, comma-separated")
    parser.add_argument("--cold", action="store_true",
                        help="load without first making memory resident (each contender then meets the host's "
                             "reclaimed pages by chance)")
    parser.add_argument("--resident-mib", type=int, default=1024,
                        help="memory each child writes and frees before its clock starts")
    parser.add_argument("--omp-threads", default="unset",
                        help="OMP_NUM_THREADS of the loading children, which sets pyarrow's thread count ('unset': "
                             "pyarrow's default, every core)")
    args = parser.parse_args()
    if args.omp_threads != "unset" and not (args.omp_threads.isdigit() and int(args.omp_threads) > 0):
        parser.error(f"--omp-threads takes a positive number or 'unset', got {args.omp_threads!r}")
    if args.repeats < 1:
        parser.error(f"--repeats takes a positive number, got {args.repeats}")
    formats = args.formats.split(",")
    if not formats or any(fmt not in ("csv", "parquet") for fmt in formats):
        parser.error(f"--formats takes csv and/or parquet, comma-separated, got {args.formats!r}")
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = write_tables(args.rows, Path(tmp))
        os.sync()  # the kernel writes the files back now, not during the first rounds' loads
        print(f"{args.rows} rows x 20 columns + label written in {time.perf_counter() - started:.1f} s "
              f"(CSV {paths['csv'].stat().st_size / 2**20:.0f} MiB, Parquet {paths['parquet'].stat().st_size / 2**20:.0f} MiB)")
        chosen = {fmt: paths[fmt] for fmt in formats}
        bench_loading(chosen, args.rounds, args.repeats, 0 if args.cold else args.resident_mib * 2**20, args.omp_threads)
        if not args.skip_throughput:
            bench_throughput(paths["parquet"], args.rounds, args.train_rows)


if __name__ == "__main__":
    main()
