"""MLflowLogger against real MLflow (a local SQLite store): the logger on its own, and ``dtrain`` runs
with ``logger=mlflow`` (params, metric histories equal to TensorBoard's, artifacts, resume, sweeps,
an unreachable server, a missing package)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from declarative_train.jobs.hparams import flatten_config
from declarative_train.loggers import Logger, MLflowLogger
from declarative_train.loggers.mlflow_logger import (
    MAX_PARAM_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    PARENT_RUN_ID_FILE,
    RUN_ID_FILE,
    TRUNCATED,
    param_key,
    param_value,
)
from tests.conftest import cli_env
from tests.loggers.test_csv_logger import as_float32, by_metric, tensorboard_scalars

pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
from mlflow.tracking import MlflowClient  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QUICK = ["trainer.max_epochs=2", "trainer.limit_train_batches=5", "trainer.limit_val_batches=2",
         "trainer.limit_test_batches=2", "trainer.log_every_n_steps=1", "logger.mlflow.flush_every_n_steps=3"]


def client_for(root: Path) -> MlflowClient:
    """The client of the default store of runs started in ``root`` (``outputs/mlflow.db``)."""
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'outputs' / 'mlflow.db'}")


def dtrain(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    env["PYTHONPATH"] = str(REPO)
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "declarative_train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    run = client.get_run(run_id)
    series = {}
    for name in run.data.metrics:
        points = sorted(client.get_metric_history(run_id, name), key=lambda m: (m.step, m.timestamp))
        series[name] = [(m.step, m.value) for m in points]
    return series


def artifact_text(client: MlflowClient, run_id: str, path: str, tmp: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_text()


# ---- the logger on its own -------------------------------------------------------------------


def test_is_a_logger_and_building_it_imports_and_touches_nothing(tmp_path: Path) -> None:
    logger = MLflowLogger(str(tmp_path / "run"), tracking_uri=f"sqlite:///{tmp_path}/db/mlflow.db")
    assert isinstance(logger, Logger)
    assert logger.run_name == "run"  # the run folder's name
    assert not (tmp_path / "run").exists() and not (tmp_path / "db").exists()
    with pytest.raises(ValueError, match="flush_every_n_steps"):
        MLflowLogger(str(tmp_path), flush_every_n_steps=0)
    code = "import sys, declarative_train.loggers, declarative_train.build; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True)
    assert out.stdout.strip() == "False"


def test_param_limits() -> None:
    assert param_value("x" * MAX_PARAM_VALUE_LENGTH) == "x" * MAX_PARAM_VALUE_LENGTH
    long = param_value("y" * (MAX_PARAM_VALUE_LENGTH + 1))
    assert len(long) == MAX_PARAM_VALUE_LENGTH and long.endswith(TRUNCATED)
    assert param_value(None) == "None" and param_value([1, 2]) == "[1, 2]"
    key_a, key_b = param_key("k" * 300 + "a"), param_key("k" * 300 + "b")
    assert len(key_a) == MAX_PARAM_KEY_LENGTH and key_a != key_b
    assert param_key("optimizer.lr") == "optimizer.lr"


def test_params_batches_metrics_resume_and_status(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    run_dir = tmp_path / "run"
    logger = MLflowLogger(str(run_dir), tracking_uri=uri, flush_every_n_steps=4, tags={"team": "a"})
    logger.setup()
    config = {"section": {f"p{i}": i for i in range(250)}, "long": "z" * 7000, "paths": {"x": 1}, "_private": 1}
    logger.log_text("config", yaml.safe_dump(config))  # 251 params: three log_batch calls
    for step in range(10):
        logger.log_metrics({"a": step * 0.5, "b/c": float(step)}, step)
    logger.log_hyperparams({"section.p1": 1, "extra": "new"}, {"a": 4.5})
    logger.finalize()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run((run_dir / RUN_ID_FILE).read_text())
    params = run.data.params
    assert len(params) == 252 and params["section.p249"] == "249" and params["extra"] == "new"
    assert params["long"].endswith(TRUNCATED) and len(params["long"]) == MAX_PARAM_VALUE_LENGTH
    assert "paths.x" not in params and "_private" not in params
    assert histories(client, run.info.run_id) == {"a": [(s, s * 0.5) for s in range(10)],
                                                   "b/c": [(s, float(s)) for s in range(10)]}
    assert run.info.status == "FINISHED" and run.data.tags["team"] == "a"
    assert run.info.run_name == "run"
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.yaml"]
    # The same folder again (a resumed run): the same MLflow run, logged params kept.
    again = MLflowLogger(str(run_dir), tracking_uri=uri)
    again.setup()
    assert again.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    again.log_text("config", yaml.safe_dump({"section": {"p1": 99, "p250": 250}}))  # p1 keeps "1"
    again.log_metrics({"a": 100.0}, 10)
    again.finalize()
    run = client.get_run(run.info.run_id)
    assert run.data.params["section.p1"] == "1" and run.data.params["section.p250"] == "250"
    assert histories(client, run.info.run_id)["a"][-1] == (10, 100.0)
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_missing_mlflow_package_fails_at_setup_naming_the_extra(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "mlflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named mlflow')\n")
    code = ("from declarative_train.loggers import MLflowLogger\n"
            "from declarative_train.errors import ConfigError\n"
            "try:\n    MLflowLogger('run').setup()\nexcept ConfigError as e:\n    print(e.format())\n")
    env = {**cli_env(), "PYTHONPATH": f"{tmp_path / 'shadow'}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "logger.mlflow: logger=mlflow needs the mlflow package" in out.stdout, out.stderr
    assert "pip install 'declarative_train[mlflow]'" in out.stdout


# ---- dtrain logger=mlflow ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_loggers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run with ``logger=[tensorboard,csv,mlflow]``: (the folder dtrain ran in, the run folder)."""
    root = tmp_path_factory.mktemp("mlflow_run")
    run_dir = root / "run"
    proc = dtrain(root, "logger=[tensorboard,csv,mlflow]", *QUICK, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, run_dir


def test_three_loggers_write_and_mlflow_has_what_tensorboard_has(three_loggers: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    root, run_dir = three_loggers
    client = client_for(root)
    run = client.get_run((run_dir / RUN_ID_FILE).read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    series = histories(client, run.info.run_id)
    tensorboard = tensorboard_scalars(run_dir)
    assert {"train/loss", "val/loss", "val/acc", "lr-Adam", "test/acc"} <= set(series)
    assert as_float32(series) == tensorboard  # every tag, every step
    assert as_float32(by_metric(run_dir / "metrics.csv")) == tensorboard  # the csv logger too
    # Params: the flattened resolved config, as logged in config.yaml.
    config = OmegaConf.create(yaml.safe_load(artifact_text(client, run.info.run_id, "config.yaml", tmp_path)))
    expected = {param_key(k): param_value(v) for k, v in flatten_config(config).items()}
    assert run.data.params == expected
    assert run.data.params["trainer.max_epochs"] == "2"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "results.json", "hydra"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "hydra")} == {"hydra/config.yaml",
                                                                                 "hydra/overrides.yaml"}
    logged = json.loads(artifact_text(client, run.info.run_id, "results.json", tmp_path))
    assert logged == json.loads((run_dir / "results.json").read_text())
    assert run.data.tags["dtrain.run_dir"] == str(run_dir)
    assert (root / "outputs" / "mlartifacts").is_dir()  # next to the database, not ./mlruns
    assert not (root / "mlruns").exists()


@pytest.mark.slow
def test_killed_and_resumed_run_is_one_mlflow_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["logger=[tensorboard,mlflow]", *QUICK, f"hydra.run.dir={run_dir}", "trainer.max_epochs=3"]
    killed = dtrain(tmp_path, *args, "user_packages=[tests]", "+callbacks.killer._target_=tests.e2e.killer.Killer",
                    "+callbacks.killer.after_step=7", "+callbacks.killer.signal_name=SIGTERM")
    assert killed.returncode != 0 and "SIGTERM" in killed.stderr, killed.stderr[-3000:]
    client = client_for(tmp_path)
    run_id = (run_dir / RUN_ID_FILE).read_text()
    assert client.get_run(run_id).info.status == "KILLED"
    resumed = dtrain(tmp_path, *args, "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / RUN_ID_FILE).read_text() == run_id
    (run,) = client.search_runs([client.get_run(run_id).info.experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    steps = {step for step, _ in histories(client, run_id)["train/loss"]}
    assert steps == set(range(1, 16))  # both processes' steps in one history (3 epochs x 5 batches)
    assert run.data.params["trainer.max_epochs"] == "3"


@pytest.mark.slow
def test_sweep_jobs_are_children_of_one_parent_run(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = dtrain(tmp_path, "-m", "logger=mlflow", *QUICK, "trainer.max_epochs=1", "optimizer.lr=0.01,0.001",
                  f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = client_for(tmp_path)
    parent_id = (sweep_dir / PARENT_RUN_ID_FILE).read_text()
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "sweep"
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in runs) == ["optimizer.lr=0.001", "optimizer.lr=0.01"]
    assert {r.info.run_id for r in runs} == {(sweep_dir / n / RUN_ID_FILE).read_text() for n in ("0", "1")}
    assert all(r.info.status == "FINISHED" and "val/acc" in r.data.metrics for r in runs)
    assert sorted(r.data.params["optimizer.lr"] for r in runs) == ["0.001", "0.01"]
    assert len(client.search_runs([parent.info.experiment_id])) == 3  # no second parent from a race
    listed = {row["job"]: row["mlflow_run_id"] for row in csv.DictReader((sweep_dir / "summary.csv").open())}
    assert listed == {n: (sweep_dir / n / RUN_ID_FILE).read_text() for n in ("0", "1")}
    assert f"- MLflow: the jobs are child runs of run {parent_id}" in (sweep_dir / "summary.md").read_text()


def test_an_unreachable_tracking_server_fails_at_start(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = dtrain(tmp_path, "logger=mlflow", *QUICK, "logger.mlflow.tracking_uri=http://127.0.0.1:9")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "logger.mlflow.tracking_uri: the MLflow tracking server http://127.0.0.1:9 is not reachable" in proc.stderr
    assert time.monotonic() - started < 60
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    assert not (run_dir / "checkpoints").exists()  # nothing was trained
    assert json.loads((run_dir / "results.json").read_text())["status"] == "failed"

