"""What every shipped preset reaches: test metric over seeds, wall time, and sklearn's Ridge.

Run: ``python bench/bench_presets.py`` (about 3 minutes on 2 cores) prints the README's
"Preset scores" table; ``--readme`` also rewrites that table in README.md between its markers.
Each row is one ``dtrain`` command line, run as a user runs it (a whole process, the default
logger) once per seed; the table gives the mean and standard deviation of the test metric over
the seeds, the lowest seed, the floor the slow test tier holds the row to
(``tests/e2e/test_presets.py``), and the mean wall time of the whole process. The seed changes
initialisation and shuffling; the data split stays the one the data config fixes
(``split_seed=0``), which is also the split sklearn's ``Ridge`` is fitted and scored on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = (1, 2, 3)
BEGIN, END = "<!-- preset-scores:begin -->", "<!-- preset-scores:end -->"


@dataclass(frozen=True)
class Preset:
    """One shipped preset: the overrides after ``dtrain``, what it is scored on, and its floor."""

    overrides: tuple[str, ...]
    data: str
    metric: str
    floor: float  # below the lowest seed measured, so the slow tier is not flaky

    @property
    def command(self) -> str:
        return " ".join(("dtrain", *self.overrides))


#: Every experiment and model choice that fits the data it ships with.
PRESETS = (
    Preset((), "digits", "test/acc", 0.95),
    Preset(("model=linear",), "digits", "test/acc", 0.89),
    Preset(("model=cnn",), "digits", "test/acc", 0.98),
    Preset(("experiment=digits_cnn",), "digits", "test/acc", 0.98),
    Preset(("experiment=synthetic",), "synthetic", "test/acc", 0.97),
    Preset(("experiment=diabetes_regression",), "diabetes", "test/r2", 0.40),
    Preset(("experiment=diabetes_regression", "model=mlp_regressor"), "diabetes", "test/r2", 0.25),
)


@dataclass(frozen=True)
class Outcome:
    """A preset's run: its results.json and the process's wall seconds."""

    results: dict[str, object]
    wall_s: float

    def metric(self, name: str) -> float:
        test = self.results["test"]
        assert isinstance(test, dict)
        return float(test[name])

    @property
    def epochs(self) -> int:
        return int(self.results["epochs"])  # type: ignore[call-overload]


def run_preset(preset: Preset, seed: int, run_dir: Path, *extra: str) -> Outcome:
    """One ``dtrain`` process for ``preset`` writing into ``run_dir``; raises if it fails."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "declarative_train", *preset.overrides, f"seed={seed}",
         f"hydra.run.dir={run_dir}", *extra],
        cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=900)
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"`{preset.command} seed={seed}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return Outcome(json.loads((run_dir / "results.json").read_text()), wall_s)


def ridge_r2() -> tuple[float, float]:
    """sklearn's ``Ridge`` on the diabetes preset's split: alpha chosen on val, then test R^2."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    from declarative_train.data import Diabetes

    data = Diabetes(batch_size=32)  # the split and standardisation of conf/data/diabetes.yaml
    data.setup()
    features = {split: ds.tensors[0].numpy() for split, ds in data.datasets.items()}
    target = {split: ds.tensors[1].numpy() for split, ds in data.datasets.items()}

    def fitted(alpha: float) -> Ridge:
        return Ridge(alpha=alpha).fit(features["train"], target["train"])

    alpha = max((0.01, 0.1, 1.0, 10.0, 100.0),
                key=lambda a: r2_score(target["val"], fitted(a).predict(features["val"])))
    return alpha, float(r2_score(target["test"], fitted(alpha).predict(features["test"])))


def table(scores: dict[Preset, list[Outcome]], ridge: tuple[float, float]) -> str:
    """The README's markdown table."""
    lines = ["| command | data | epochs | test metric: mean ± sd (lowest) over seeds 1-3 | floor | wall s |",
             "|---|---|---|---|---|---|"]
    for preset, outcomes in scores.items():
        values = [o.metric(preset.metric) for o in outcomes]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        wall = statistics.mean(o.wall_s for o in outcomes)
        lines.append(f"| `{preset.command}` | {preset.data} | {outcomes[0].epochs} | "
                     f"{preset.metric} {statistics.mean(values):.3f} ± {spread:.3f} ({min(values):.3f}) | "
                     f"{preset.floor:.2f} | {wall:.1f} |")
    alpha, r2 = ridge
    lines.append(f"| sklearn `Ridge(alpha={alpha:g})`, alpha chosen on val | diabetes | - | test/r2 {r2:.3f} | - | - |")
    return "\n".join(lines)


def write_readme(text: str, readme: Path = REPO / "README.md") -> None:
    """Replace the table between the markers in ``readme`` (written whole, then renamed)."""
    content = readme.read_text()
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    partial = readme.with_suffix(".md.tmp")
    partial.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    partial.replace(readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args()
    scores: dict[Preset, list[Outcome]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for index, preset in enumerate(PRESETS):
            scores[preset] = []
            for seed in SEEDS:
                outcome = run_preset(preset, seed, Path(scratch) / f"{index}-{seed}")
                scores[preset].append(outcome)
                print(f"  {preset.command} seed={seed}: {preset.metric}={outcome.metric(preset.metric):.4f} "
                      f"in {outcome.wall_s:.1f} s", file=sys.stderr, flush=True)
    text = table(scores, ridge_r2())
    print(text)
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    main()
