"""CSVLogger: the file it writes (header growth, exact values, flushing, resume) and ``dtrain`` runs
with ``logger=[tensorboard,csv]`` whose ``metrics.csv`` matches TensorBoard's event files."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from declarative_train.loggers import CSVLogger, Logger
from tests.conftest import cli_env


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def header(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def by_metric(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``metrics.csv`` as (step, value) pairs per metric, in file order."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in read_rows(path):
        for name, value in row.items():
            if name != "step" and value != "":
                series[name].append((int(row["step"]), float(value)))
    return dict(series)


# ---- the logger on its own -------------------------------------------------------------------


def test_is_a_logger_and_building_it_touches_no_files(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path / "run"))
    assert isinstance(logger, Logger)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="flush_logs_every_n_steps"):
        CSVLogger(str(tmp_path), flush_logs_every_n_steps=0)


def test_header_grows_sorted_after_step_and_rows_keep_their_values(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=1)
    logger.setup()
    logger.log_metrics({"train/loss": 2.5}, step=1)
    logger.log_metrics({"train/loss": 2.0}, step=2)
    assert header(tmp_path / "metrics.csv") == ["step", "train/loss"]
    logger.log_metrics({"val/acc": 0.5, "lr-Adam": 0.001}, step=2)  # new names: file rewritten
    logger.log_metrics({"train/loss": 1.5}, step=3)
    logger.finalize()
    path = tmp_path / "metrics.csv"
    assert header(path) == ["step", "lr-Adam", "train/loss", "val/acc"]
    assert read_rows(path) == [
        {"step": "1", "lr-Adam": "", "train/loss": "2.5", "val/acc": ""},
        {"step": "2", "lr-Adam": "", "train/loss": "2.0", "val/acc": ""},
        {"step": "2", "lr-Adam": "0.001", "train/loss": "", "val/acc": "0.5"},
        {"step": "3", "lr-Adam": "", "train/loss": "1.5", "val/acc": ""},
    ]
    assert not list(tmp_path.glob(".metrics.csv.*"))  # no temporary files left behind


def test_values_round_trip_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = [float(v) for v in rng.standard_normal(50) * 10.0 ** rng.integers(-30, 30, 50)]
    values += [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, float("inf")]
    singles = [v.item() for v in rng.standard_normal(len(values)).astype(np.float32)]  # as TensorBoard stores
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=7)
    for step, (value, single) in enumerate(zip(values, singles)):
        logger.log_metrics({"a": value, "b": single}, step)
    logger.log_metrics({"t": torch.tensor(0.1, dtype=torch.float64), "n": np.float64(1 / 7), "i": 3,
                        "nan": float("nan")}, step=len(values))
    logger.finalize()
    rows = read_rows(tmp_path / "metrics.csv")
    assert [repr(float(r["a"])) for r in rows[:-1]] == [repr(v) for v in values]  # -0.0 too
    assert [float(r["b"]) for r in rows[:-1]] == singles
    assert [int(r["step"]) for r in rows] == list(range(len(values) + 1))
    assert (rows[-1]["t"], rows[-1]["n"], rows[-1]["i"], rows[-1]["nan"]) == ("0.1", repr(1 / 7), "3", "nan")


def test_rows_are_buffered_until_n_rows_or_finalize(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=3)
    logger.setup()
    logger.log_metrics({"x": 1.0}, step=1)
    logger.log_metrics({"x": 2.0}, step=2)
    assert not path.exists()
    logger.log_metrics({"x": 3.0}, step=3)
    assert len(read_rows(path)) == 3
    logger.log_metrics({"x": 4.0}, step=4)
    assert len(read_rows(path)) == 3
    logger.finalize()
    assert [r["x"] for r in read_rows(path)] == ["1.0", "2.0", "3.0", "4.0"]
    logger.finalize()  # twice is harmless
    assert len(read_rows(path)) == 4


def test_hparams_yaml_holds_the_params_as_plain_yaml(tmp_path: Path) -> None:
    logger = CSVLogger(str(tmp_path))
    logger.log_text("config", "ignored")
    logger.log_histogram("weights/w", torch.ones(3), step=1)
    params = {"optimizer.lr": 0.001, "model": "mlp", "trainer.max_epochs": 2, "deterministic": False,
              "ckpt_path": None, "optimizer.betas": [0.9, 0.999], "path": Path("/x")}
    logger.log_hyperparams(params, {"test/acc": 0.9})
    logger.finalize()
    assert yaml.safe_load((tmp_path / "hparams.yaml").read_text()) == {**params, "path": "/x"}
    assert not (tmp_path / "metrics.csv").exists()  # nothing logged, no file


def _existing(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    return path


def test_resume_drops_redone_steps_and_keeps_the_rest(tmp_path: Path) -> None:
    # A run logged steps 1..6 and was killed; its checkpoint is at step 4, so the resumed run logs
    # from step 5 on: rows after its first step go, the rest stays (header and all).
    lines = ["step,train/loss,val/acc"] + [f"{s},{s / 10},{'' if s % 2 else s / 100}" for s in range(1, 7)]
    path = _existing(tmp_path, "\n".join(lines) + "\n")
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=1)
    logger.log_metrics({"train/loss": 9.5}, step=5)
    logger.log_metrics({"train/loss": 9.6, "lr": 0.1}, step=6)
    logger.finalize()
    assert by_metric(path) == {"train/loss": [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 9.5), (6, 9.6)],
                               "val/acc": [(2, 0.02), (4, 0.04)], "lr": [(6, 0.1)]}
    assert header(path) == ["step", "lr", "train/loss", "val/acc"]


def test_resume_at_the_checkpoint_step_keeps_what_is_not_logged_again(tmp_path: Path) -> None:
    # Resumed from the epoch-end checkpoint at step 4: the new process first logs the learning
    # rate at step 4 (epoch start). The old run's loss and validation at step 4 stay, its learning
    # rate at step 4 (logged just before it was killed) is replaced, and steps after 4 go.
    path = _existing(tmp_path, "step,lr,train/loss,val/acc\n0,0.1,,\n2,,0.5,\n4,,0.25,\n4,,,0.75\n4,0.2,,\n5,,0.2,\n")
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=1)
    logger.log_metrics({"lr": 0.3}, step=4)
    logger.log_metrics({"train/loss": 0.125}, step=6)
    logger.finalize()
    assert by_metric(path) == {"lr": [(0, 0.1), (4, 0.3)], "train/loss": [(2, 0.5), (4, 0.25), (6, 0.125)],
                               "val/acc": [(4, 0.75)]}


def test_a_torn_last_line_is_dropped_and_an_untouched_file_is_appended_to(tmp_path: Path) -> None:
    path = _existing(tmp_path, "step,x\n1,1.0\n2,2.0\n3,3.")  # crash in the middle of an append
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=1)
    logger.log_metrics({"x": 3.5}, step=3)
    logger.finalize()
    assert path.read_text() == "step,x\n1,1.0\n2,2.0\n3,3.5\n"
    inode = path.stat().st_ino
    logger = CSVLogger(str(tmp_path), flush_logs_every_n_steps=1)
    logger.log_metrics({"x": 4.0}, step=4)
    logger.finalize()
    assert path.read_text().endswith("3,3.5\n4,4.0\n")
    assert path.stat().st_ino == inode  # appended, not rewritten


# ---- dtrain logger=[tensorboard,csv] ------------------------------------------------------------

RUN = ["logger=[tensorboard,csv]", "logger.csv.flush_logs_every_n_steps=7", "trainer.log_every_n_steps=3"]


def dtrain(run_dir: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "declarative_train", *RUN, f"hydra.run.dir={run_dir}", *args],
                          cwd=run_dir.parent, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-epoch run, and a copy of it resumed (resume=auto, same folder) to 3 epochs."""
    root = tmp_path_factory.mktemp("csv_runs")
    two, three = root / "two", root / "three"
    dtrain(two, "trainer.max_epochs=2")
    shutil.copytree(two, three)
    dtrain(three, "trainer.max_epochs=3", "resume=auto")
    return two, three


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def as_float32(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard stores scalars as float32."""
    return {name: [(step, float(np.float32(value))) for step, value in points] for name, points in series.items()}


@pytest.mark.parametrize("which", ["two", "resumed"])
def test_metrics_csv_has_what_tensorboard_has(runs: tuple[Path, Path], which: str) -> None:
    run_dir = runs[0] if which == "two" else runs[1]
    csv_series = by_metric(run_dir / "metrics.csv")
    assert {"train/loss", "val/loss", "val/acc", "val/f1", "test/loss", "test/acc", "test/f1", "lr-Adam"} <= set(csv_series)
    assert as_float32(csv_series) == tensorboard_scalars(run_dir)
    hparams = yaml.safe_load((run_dir / "hparams.yaml").read_text())
    assert hparams["trainer.max_epochs"] == (2 if which == "two" else 3)


def test_resume_into_the_same_folder_continues_without_duplicates(runs: tuple[Path, Path]) -> None:
    two, three = runs
    before, after = by_metric(two / "metrics.csv"), by_metric(three / "metrics.csv")
    for name, points in after.items():
        steps = [step for step, _ in points]
        assert steps == sorted(set(steps)), name  # strictly increasing: no step twice
    # 20 batches per epoch: all three epochs are there, and the first two are the first run's rows
    assert [s for s, _ in after["train/loss"]] == list(range(3, 61, 3))
    assert [s for s, _ in after["val/acc"]] == [20, 40, 60]
    assert [s for s, _ in after["lr-Adam"]] == [0, 20, 40]
    assert [s for s, _ in after["test/acc"]] == [40, 60]  # the first run's test, then the resumed run's
    for name, points in before.items():
        assert after[name][: len(points)] == points, name
