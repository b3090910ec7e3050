"""Benchmark declarative_train.metrics against TorchMetrics (optional) and scikit-learn.

Run: ``python bench/bench_metrics.py`` (single thread). Prints one table:

* ``update`` cost per 256x10 batch for Accuracy, F1 (macro), AUROC (exact) and MSE, with input
  validation on (the default) and off, and our fixed cost beyond the bare torch ops;
* exact AUROC / average precision ``compute`` on 1e6 samples vs scikit-learn (and the difference);
* state memory of binned vs exact AUROC as the number of samples grows;
* collectives issued by one sync of a 5-metric collection in a real 2-process gloo run.
"""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import declarative_train.metrics as dm  # noqa: E402
from declarative_train.metrics.functional import _format  # noqa: E402
from declarative_train.metrics.functional import curves as dmf  # noqa: E402

try:
    import torchmetrics as tm
    import torchmetrics.functional.classification as tmf
except ImportError:  # pragma: no cover - optional
    tm = None
    tmf = None

ROWS: list[tuple[str, str, str, str, str]] = []


def row(what: str, ours: float | str, other: float | str, ratio: str, note: str = "") -> None:
    fmt = lambda v: f"{v:,.1f}" if isinstance(v, float) else v  # noqa: E731
    ROWS.append((what, fmt(ours), fmt(other), ratio, note))


def per_call_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(50, n)):
        fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def bench_updates(n: int = 2000) -> None:
    torch.manual_seed(0)
    batches = [(torch.randn(256, 10), torch.randint(0, 10, (256,))) for _ in range(8)]
    reg = [(torch.randn(256), torch.randn(256)) for _ in range(8)]
    specs = [
        (
            "Accuracy",
            lambda v: dm.Accuracy(task="multiclass", num_classes=10, validate_args=v),
            lambda v: (
                tm.Accuracy(task="multiclass", num_classes=10, validate_args=v) if tm else None
            ),
            batches,
        ),
        (
            "F1 macro",
            lambda v: dm.F1Score(
                task="multiclass", num_classes=10, average="macro", validate_args=v
            ),
            lambda v: (
                tm.F1Score(task="multiclass", num_classes=10, average="macro", validate_args=v)
                if tm
                else None
            ),
            batches,
        ),
        (
            "AUROC exact",
            lambda v: dm.AUROC(task="multiclass", num_classes=10, validate_args=v),
            lambda v: tm.AUROC(task="multiclass", num_classes=10, validate_args=v) if tm else None,
            batches,
        ),
        (
            "MSE",
            lambda v: dm.MeanSquaredError(validate_args=v),
            lambda v: tm.MeanSquaredError() if tm else None,
            reg,
        ),
    ]
    for name, ours_fn, tm_fn, data in specs:
        for validate in (True, False):
            it = iter(range(10**9))

            def step(m, it=it, data=data):
                i = next(it) % len(data)
                m.update(*data[i])

            ours_m = ours_fn(validate)
            ours = per_call_us(lambda m=ours_m: step(m), n)
            if name == "AUROC exact":
                ours_m.reset()
            other_m = tm_fn(validate)
            other = (
                per_call_us(lambda m=other_m: step(m), n) if other_m is not None else float("nan")
            )
            label = f"update {name} (validate={validate}) us/batch"
            row(
                label,
                ours,
                other if other_m is not None else "n/a",
                f"{other / ours:.2f}" if other == other else "",
            )
    # fixed cost beyond the bare torch ops of Accuracy.update (validate_args=False)
    p, t = batches[0]
    state = torch.zeros(10, 10, dtype=torch.long)

    def bare():
        state.add_(_format.multiclass_confmat(p, t, 10, None))

    acc = dm.Accuracy(task="multiclass", num_classes=10, validate_args=False)
    bare_us = per_call_us(bare, n)
    full_us = per_call_us(lambda: acc.update(p, t), n)
    row(
        "Accuracy.update fixed cost beyond torch ops (us)",
        full_us - bare_us,
        "-",
        "",
        f"bare ops {bare_us:.1f} us",
    )


def bench_exact_compute(n: int = 1_000_000) -> None:
    import sklearn.metrics as skm

    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.4 + 0.2 * target, 0.2), 0, 1).astype(np.float32)
    scores = np.round(scores, 4).astype(np.float32)  # plenty of ties
    p, t = torch.from_numpy(scores), torch.from_numpy(target)
    for label, ours_fn, sk_fn, tm_fn in (
        (
            "AUROC",
            lambda: dmf.auroc(p, t, task="binary", validate_args=False),
            lambda: skm.roc_auc_score(target, scores),
            (lambda: tmf.binary_auroc(p, t, validate_args=False)) if tmf else None,
        ),
        (
            "AP",
            lambda: dmf.average_precision(p, t, task="binary", validate_args=False),
            lambda: skm.average_precision_score(target, scores),
            (lambda: tmf.binary_average_precision(p, t, validate_args=False)) if tmf else None,
        ),
    ):
        ours_v, sk_v = float(ours_fn()), float(sk_fn())
        ours_ms = per_call_us(ours_fn, 2) / 1e3
        sk_ms = per_call_us(sk_fn, 2) / 1e3
        row(
            f"compute exact {label} 1e6 samples (ms) vs sklearn",
            ours_ms,
            sk_ms,
            f"{sk_ms / ours_ms:.2f}",
            f"|diff|={abs(ours_v - sk_v):.1e}",
        )
        if tm_fn is not None:
            tm_ms = per_call_us(tm_fn, 2) / 1e3
            row(
                f"compute exact {label} 1e6 samples (ms) vs TorchMetrics",
                ours_ms,
                tm_ms,
                f"{tm_ms / ours_ms:.2f}",
                f"|diff|={abs(ours_v - float(tm_fn())):.1e}",
            )


def _state_bytes(m: dm.Metric) -> int:
    total = 0
    for value in m.metric_state().values():
        for t in value if isinstance(value, list) else [value]:
            total += t.numel() * t.element_size()
    return total


def bench_memory() -> None:
    for n in (10_000, 100_000, 1_000_000):
        binned = dm.AUROC(task="multiclass", num_classes=10, thresholds=200, validate_args=False)
        exact = dm.AUROC(task="multiclass", num_classes=10, validate_args=False)
        for _ in range(n // 10_000):
            p, t = torch.randn(10_000, 10), torch.randint(0, 10, (10_000,))
            binned.update(p, t)
            exact.update(p, t)
        row(
            f"AUROC state bytes after {n:,} samples (binned 200 | exact)",
            str(_state_bytes(binned)),
            str(_state_bytes(exact)),
            "",
            "binned constant",
        )


def _count_collectives(fn: Callable[[], object]) -> dict[str, int]:
    counts = {
        "all_reduce": 0,
        "all_gather": 0,
        "all_gather_into_tensor": 0,
        "barrier": 0,
        "broadcast": 0,
    }
    originals = {k: getattr(dist, k) for k in counts}

    def wrap(name):
        def inner(*a, **kw):
            counts[name] += 1
            return originals[name](*a, **kw)

        return inner

    for k in counts:
        setattr(dist, k, wrap(k))
    try:
        fn()
    finally:
        for k, v in originals.items():
            setattr(dist, k, v)
    return counts


def _five(lib):
    return {
        "acc": lib.Accuracy(task="multiclass", num_classes=10),
        "f1": lib.F1Score(task="multiclass", num_classes=10, average="macro"),
        "auroc": lib.AUROC(task="multiclass", num_classes=10),
        "mse": lib.MeanSquaredError(),
        "r2": lib.R2Score(),
    }


def _sync_worker(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),
    )
    results = {}
    libs = [("ours", dm)] + ([("torchmetrics", tm)] if tm else [])
    for name, lib in libs:
        coll = lib.MetricCollection(_five(lib))
        logits, target = torch.randn(64 + rank * 10, 10), torch.randint(0, 10, (64 + rank * 10,))
        for key, m in coll.items():
            if key in ("mse", "r2"):
                m.update(logits[:, 0], target.float())
            else:
                m.update(logits, target)
        counts = _count_collectives(coll.compute)
        results[name] = sum(counts.values())
        results[name + "_detail"] = {k: v for k, v in counts.items() if v}
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def bench_collectives() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "res.pt")
        mp.start_processes(
            _sync_worker, args=(os.path.join(tmp, "init"), out), nprocs=2, start_method="spawn"
        )
        res = torch.load(out, weights_only=False)
    other = res.get("torchmetrics", "n/a")
    ratio = f"{other / res['ours']:.1f}x fewer" if isinstance(other, int) else ""
    row(
        "collectives per sync, 5-metric collection (2 ranks)",
        str(res["ours"]),
        str(other),
        ratio,
        f"ours {res['ours_detail']}; tm {res.get('torchmetrics_detail', {})}",
    )


def main() -> None:
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, torchmetrics {tm.__version__ if tm else 'missing'}, 1 thread"
    )
    bench_updates()
    bench_exact_compute()
    bench_memory()
    bench_collectives()
    headers = ("measure", "ours", "other", "other/ours", "note")
    widths = [max(len(str(r[i])) for r in [headers, *ROWS]) for i in range(5)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in ROWS:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
