"""``dtrain-predict`` on two worker processes (gloo on CPU): the rows of both ranks, in order, written once."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")  # the [tables] extra
import pyarrow.csv as pa_csv  # noqa: E402

from declarative_train.data.sklearn_table import write_sklearn_csv  # noqa: E402
from tests.distributed._procs import DDP, finish, only_run_dir, run, start, stop, wait_for  # noqa: E402

pytestmark = pytest.mark.ddp
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A wine classifier trained by ``dtrain`` (one process), a file of an odd number of new rows, the entry script."""
    folder = tmp_path_factory.mktemp("wine")
    train = write_sklearn_csv("wine", folder / "wine.csv")
    table = pa_csv.read_csv(train)
    order = list(range(table.num_rows))[::-3][:59]  # not the file's order; 59 rows: shards of 30 and 29
    new = table.drop(["cultivar"]).take(order).append_column("sample_id", pa.array([f"s{i}" for i in order]))
    pa_csv.write_csv(new, folder / "new.csv")
    big = pa.concat_tables([new] * 2000)  # 118 000 rows: the workers predict for a while
    pa_csv.write_csv(big.set_column(big.num_columns - 1, "sample_id", pa.array(range(big.num_rows))), folder / "big.csv")
    script = folder / "dtrain_predict.py"  # the console script, for `python` and torchrun alike
    script.write_text("from declarative_train.cli import predict_main\npredict_main()\n")
    rc, _, err = run(["-m", "declarative_train", "data=table", f"data.path={train}", "data.target=cultivar",
                      "trainer.max_epochs=2", "logger=none", "test=false"], folder / "train")
    assert rc == 0, err
    ckpt = only_run_dir(folder / "train") / "checkpoints" / "last.ckpt"
    yield {"folder": folder, "new": folder / "new.csv", "big": folder / "big.csv", "ckpt": ckpt,
           "script": script, "order": order}


def _predict(table_run: dict[str, Any], cwd: Path, *args: str) -> tuple[int, str, str]:
    return run([str(table_run["script"]), f"ckpt_path={table_run['ckpt']}", *args], cwd)


@pytest.fixture(scope="module")
def one_process(table_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run folder (and its command's folder) of ``dtrain-predict ARGS`` in one process, run once per ARGS."""
    done: dict[tuple[str, ...], tuple[Path, Path]] = {}

    def _run(*args: str) -> tuple[Path, Path]:
        if args not in done:
            cwd = tmp_path_factory.mktemp("one")
            rc, _, err = _predict(table_run, cwd, *args)
            assert rc == 0, err
            done[args] = (cwd, only_run_dir(cwd))
        return done[args]
    return _run


@pytest.mark.parametrize(("args", "written"), [
    pytest.param(["data.predict_path={new}", "data.id_column=sample_id"], "predictions.csv", id="predict-file"),
    pytest.param(["output=rows.jsonl"], "rows.jsonl", id="test-split"),  # no predict file: the test split (27 rows)
    pytest.param(["split=train", "output=train.jsonl"], "train.jsonl", id="train-split"),  # unshuffled, unpadded: 124 rows
])
def test_two_workers_write_the_file_one_process_writes(table_run: dict[str, Any], one_process: Any, tmp_path: Path,
                                                       args: list[str], written: str) -> None:
    args = [a.format(new=table_run["new"]) for a in args]
    one_cwd, one_dir = one_process(*args)
    rc, out, err = _predict(table_run, tmp_path / "two", *args, *DDP)
    assert rc == 0, err
    two_dir = only_run_dir(tmp_path / "two")
    # predictions.csv in the run folder by default; output=rows.jsonl in the command's folder
    expected = (one_dir if written == "predictions.csv" else one_cwd).joinpath(written).read_bytes()
    got = (two_dir if written == "predictions.csv" else tmp_path / "two").joinpath(written).read_bytes()
    assert got == expected  # bit for bit: every row once, in input order, the same ids and values
    rows = expected.decode().splitlines()
    assert len(rows) == {"predictions.csv": 60, "rows.jsonl": 27, "train.jsonl": 124}[written]  # (+ CSV header)
    if written.endswith(".csv"):
        assert [r.split(",")[0] for r in rows[1:]] == [f"s{i}" for i in table_run["order"]]
    assert re.search(rf"wrote {len(rows) - written.endswith('.csv')} predictions", out)
    log = (two_dir / "train.log").read_text()
    assert "worker rank 1 of 2" in log and "[rank 1]" in log and "sent to rank 0" in log
    assert (two_dir / "resolved_job.txt").read_text() == "predict\n"
    files = {p.name for p in two_dir.iterdir()} - {"resolved_config.yaml", "resolved_job.txt"}
    assert files == {p.name for p in one_dir.iterdir()}  # otherwise the same run folder as one process
    assert not list(tmp_path.rglob("*.tmp"))


def test_torchrun_ranks_predict_their_shards_and_rank_0_writes(table_run: dict[str, Any], one_process: Any,
                                                               tmp_path: Path) -> None:
    args = [f"data.predict_path={table_run['new']}", "data.id_column=sample_id"]
    rc, _, err = run([*TORCHRUN, str(table_run["script"]), f"ckpt_path={table_run['ckpt']}", *args], tmp_path)
    assert rc == 0, err
    run_dir = only_run_dir(tmp_path)
    assert (run_dir / "predictions.csv").read_bytes() == (one_process(*args)[1] / "predictions.csv").read_bytes()
    log = (run_dir / "train.log").read_text()
    assert "[rank 1]" in log and "running" in log


def test_a_file_rank_0_cannot_write_fails_the_run_naming_rank_and_error(table_run: dict[str, Any], tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")  # checked as writable (tmp_path is); fails when written
    rc, _, err = _predict(table_run, tmp_path, f"data.predict_path={table_run['new']}", "data.id_column=sample_id",
                         "output=gone/p.csv", *DDP)
    assert rc == 1, err
    assert "error: worker rank 0" in err and "exited with code 1: FileExistsError" in err and "gone" in err
    assert "Traceback" not in err and "train.log" in err
    assert not list(tmp_path.rglob("*.csv")) and not list(tmp_path.rglob("*.tmp"))


def test_killing_a_worker_ends_the_command_with_exit_1_naming_the_rank(table_run: dict[str, Any], tmp_path: Path) -> None:
    proc = start([str(table_run["script"]), f"ckpt_path={table_run['ckpt']}", f"data.predict_path={table_run['big']}",
                  "data.id_column=sample_id", *DDP], tmp_path)
    try:
        def rank_1_pid() -> int | None:
            runs = list((tmp_path / "outputs" / "runs").glob("*/train.log"))
            match = re.search(r"worker rank 1 of 2 \(pid (\d+)", runs[0].read_text()) if runs else None
            return int(match.group(1)) if match else None

        wait_for(lambda: rank_1_pid() is not None, 120, "worker rank 1")
        os.kill(rank_1_pid(), signal.SIGKILL)  # type: ignore[arg-type]
        rc, _, err = finish(proc, timeout=60)
    finally:
        stop(proc)
    assert rc == 1, err
    assert "worker rank 1" in err and "SIGKILL" in err
    assert not list(tmp_path.rglob("predictions.csv"))
