"""MLflow tracking through ``mlflow.tracking.MlflowClient`` (``logger=mlflow``; needs the ``mlflow`` extra)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from declarative_train.errors import ConfigError, ConfigIssue
from declarative_train.loggers.base import Logger
from declarative_train.utils.git import git_commit
from declarative_train.utils.io import atomic_write_bytes
from declarative_train.utils.text import first_line
from declarative_train.utils.tree import flatten_config_dict

log = logging.getLogger(__name__)

#: The file in the run folder that holds the MLflow run id, so a resumed run continues it.
RUN_ID_FILE = "mlflow_run_id"
#: The file in a sweep folder that holds the parent run id every job of the sweep is logged under.
PARENT_RUN_ID_FILE = "mlflow_parent_run_id"
#: Where configuration errors point (the key of ``conf/logger/mlflow.yaml``).
CONFIG_KEY = "logger.mlflow"
INSTALL_HINT = "pip install 'declarative_train[mlflow]'"

#: MLflow's limits (``mlflow.utils.validation``): param value and key length, entities per batch.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_PARAM_KEY_LENGTH = 250
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
TRUNCATED = "...[truncated]"
#: Metric batches waiting for the sender thread before ``log_metrics`` waits for it.
SENDER_QUEUE = 16

#: ``results.json`` status -> MLflow run status.
STATUSES = {"ok": "FINISHED", "failed": "FAILED", "preempted": "KILLED", "interrupted": "KILLED"}


class MLflowLogger(Logger):
    """Logs one MLflow run per run folder: params, metrics with steps, tags and artifacts.

    Args:
        run_dir: the run folder (``paths.output_dir``); its name is the run name outside sweeps, and
            it keeps the run id in ``mlflow_run_id`` so that a resumed run (``resume=auto`` into
            the same folder) continues the same MLflow run.
        tracking_uri: any MLflow tracking URI. The default config uses a local SQLite store
            (MLflow 3 refuses its ``file:`` store unless ``MLFLOW_ALLOW_FILE_STORE=true``).
            Artifacts of a new experiment in a local ``sqlite:///`` store go to ``mlartifacts``
            next to the database file.
        experiment_name: created when missing.
        run_name: the run's name; empty: the run folder's name (a sweep job gets its overrides).
        sweep_dir: the sweep folder when this run is a sweep job, else empty. Jobs of one sweep
            are children (tag ``mlflow.parentRunId``) of one parent run whose id is kept in
            ``<sweep_dir>/mlflow_parent_run_id``, created under a file lock (parallel jobs).
        tags: extra tags of the run.
        log_checkpoints: also upload the best checkpoint (``results.json``'s ``best_model_path``).
        flush_every_n_steps: ``log_metrics`` calls buffered before they go, as one ``log_batch``,
            to a sender thread (and at :meth:`finalize`, which waits for it): a call costs a
            list append, and the store's latency stays off the training thread.
        connect_timeout: seconds to wait for an ``http(s)`` tracking server at :meth:`setup`.

    Building the logger imports nothing and touches no files; :meth:`setup` imports MLflow,
    opens (or creates) the experiment and the run, and fails with a :class:`ConfigError` naming
    the URI when the store cannot be reached, or naming the extra when MLflow is not installed.
    Params are the flattened resolved config (logged when the executor sends the config text,
    before training), plus the keys ``log_hyperparams`` adds; a key logged once keeps its value
    (MLflow params are immutable), so a resumed run with changed settings keeps the first ones.
    At :meth:`finalize` the run gets ``results.json`` and the best checkpoint (if asked) as
    artifacts, and its status from ``results.json`` (FINISHED, FAILED or KILLED).
    """

    def __init__(
        self,
        run_dir: str,
        tracking_uri: str = "sqlite:///outputs/mlflow.db",
        experiment_name: str = "declarative_train",
        run_name: str = "",
        sweep_dir: str = "",
        tags: Mapping[str, Any] | None = None,
        log_checkpoints: bool = False,
        flush_every_n_steps: int = 100,
        connect_timeout: float = 10.0,
    ) -> None:
        if flush_every_n_steps < 1:
            raise ValueError(f"flush_every_n_steps must be at least 1, got {flush_every_n_steps}")
        self.run_dir = run_dir
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name or os.path.basename(os.path.normpath(run_dir))
        self.sweep_dir = sweep_dir or ""
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.log_checkpoints = log_checkpoints
        self.flush_every_n_steps = flush_every_n_steps
        self.connect_timeout = connect_timeout
        self.run_id: str | None = None
        self.parent_run_id: str | None = None
        self._client: Any = None
        self._pending: list[tuple[Mapping[str, float], int, int]] = []  # (metrics, step, timestamp ms)
        self._queue: queue.Queue[list[tuple[Mapping[str, float], int, int]] | None] = queue.Queue(SENDER_QUEUE)
        self._sender: threading.Thread | None = None  # sends metric batches off the training thread
        self._params: dict[str, str] = {}  # logged to the run so far
        self._started = 0.0

    # ---- setup ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Import MLflow, check the store, open the experiment and the (resumed or new) run."""
        self._started = time.time()
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise _config_error("", f"logger=mlflow needs the mlflow package ({exc}): {INSTALL_HINT}") from None
        self._check_reachable()
        os.makedirs(self.run_dir, exist_ok=True)
        database = _sqlite_file(self.tracking_uri)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Under locks: a sweep's parent run is created once, a new SQLite store's tables once.
            with _locked(self._sweep_file(PARENT_RUN_ID_FILE)), _locked(database):
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
                experiment_id = self._experiment_id()
                tags = {**self.tags, **_git_tags()}  # git asked once, for the run and its sweep's run
                if self.sweep_dir:
                    self.parent_run_id = self._parent_run(experiment_id, tags)
            self.run_id = self._open_run(experiment_id, tags)
        except ConfigError:
            raise
        except Exception as exc:
            raise _config_error("tracking_uri", f"cannot use the MLflow tracking store {self.tracking_uri!r}: "
                                                f"{type(exc).__name__}: {first_line(exc)}") from exc
        self._log_hydra_files()
        self._sender = threading.Thread(target=self._send_loop, name="mlflow-logger", daemon=True)
        self._sender.start()
        log.info("mlflow: run %s (%s) in experiment %r at %s", self.run_id, self.run_name,
                 self.experiment_name, self.tracking_uri)

    def _check_reachable(self) -> None:
        """Fail in seconds, not after MLflow's retries, when an ``http(s)`` server does not answer."""
        url = urlparse(self.tracking_uri)
        if url.scheme not in ("http", "https"):
            return
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((url.hostname or "localhost", port), timeout=self.connect_timeout):
                pass
        except OSError as exc:
            raise _config_error("tracking_uri", f"the MLflow tracking server {self.tracking_uri} is not reachable: "
                                                f"{exc}") from None

    def _experiment_id(self) -> str:
        experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(self._client.create_experiment(self.experiment_name, artifact_location=self._artifact_location()))
        except Exception:  # created meanwhile by another process
            experiment = self._client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def _artifact_location(self) -> str | None:
        """``mlartifacts`` next to a local SQLite database; MLflow would use ``./mlruns`` of the cwd."""
        database = _sqlite_file(self.tracking_uri)
        return (database.resolve().parent / "mlartifacts").as_uri() if database is not None else None

    def _parent_run(self, experiment_id: str, tags: Mapping[str, str]) -> str:
        """The sweep's parent run: read from the sweep folder, or created once (under the lock)."""
        path = self._sweep_file(PARENT_RUN_ID_FILE)
        assert path is not None
        run_id = read_run_id(path)
        if run_id and self._exists(run_id):
            self._client.update_run(run_id, status="RUNNING")
            return run_id
        sweep_name = os.path.basename(os.path.normpath(self.sweep_dir))
        run = self._client.create_run(experiment_id, run_name=sweep_name,
                                      tags={**tags, "dtrain.sweep_dir": os.path.abspath(self.sweep_dir)})
        atomic_write_bytes(str(path), run.info.run_id.encode())
        return str(run.info.run_id)

    def _open_run(self, experiment_id: str, base_tags: Mapping[str, str]) -> str:
        path = Path(self.run_dir) / RUN_ID_FILE
        run_id = read_run_id(path)
        if run_id and self._exists(run_id):  # a resumed run: continue it
            self._client.update_run(run_id, status="RUNNING")
            self._params = dict(self._client.get_run(run_id).data.params)
            log.info("mlflow: continuing run %s (from %s)", run_id, path)
            return run_id
        tags = {**base_tags, "dtrain.run_dir": os.path.abspath(self.run_dir)}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = self._client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        atomic_write_bytes(str(path), run.info.run_id.encode())
        return str(run.info.run_id)

    def _exists(self, run_id: str) -> bool:
        try:
            run = self._client.get_run(run_id)
        except Exception:  # another store, or deleted
            return False
        return bool(run.info.lifecycle_stage == "active")

    def _sweep_file(self, name: str) -> Path | None:
        return Path(self.sweep_dir) / name if self.sweep_dir else None

    def _log_hydra_files(self) -> None:
        hydra_dir = Path(self.run_dir) / ".hydra"
        for name in ("config.yaml", "overrides.yaml"):
            if (hydra_dir / name).is_file():
                self._safely("log the Hydra config", self._client.log_artifact, self.run_id,
                             str(hydra_dir / name), "hydra")

    # ---- during the run ------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffer the values; every ``flush_every_n_steps`` calls they go to the sender thread."""
        self._pending.append((dict(metrics), step, int(time.time() * 1000)))
        if len(self._pending) >= self.flush_every_n_steps:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered metrics to the sender thread (it sends them in one ``log_batch``)."""
        if not self._pending or self._sender is None:
            return
        batch, self._pending = self._pending, []
        self._queue.put(batch)  # blocks only when SENDER_QUEUE batches are waiting (back-pressure)

    def _send_loop(self) -> None:
        """The sender thread: ``log_batch`` each batch until ``None`` (a failed send is a warning)."""
        from mlflow.entities import Metric

        while (batch := self._queue.get()) is not None:
            metrics = [Metric(str(name), _number(value), timestamp, int(step))
                       for values, step, timestamp in batch for name, value in values.items()]
            for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
                self._safely("log metrics", self._client.log_batch, self.run_id,
                             metrics=metrics[start:start + MAX_METRICS_PER_BATCH])

    def _stop_sender(self) -> None:
        """Send what is buffered and wait for the sender thread to finish."""
        if self._sender is None:
            return
        self.flush()
        self._queue.put(None)
        self._sender.join()
        self._sender = None

    def log_text(self, tag: str, text: str) -> None:
        """Store ``text`` as an artifact; the composed config (``config``) also becomes the run's params."""
        if self._client is None:
            return
        name = "config.yaml" if tag == "config" else f"{tag.replace('/', '_')}.txt"
        self._safely("log text", self._client.log_text, self.run_id, text, name)
        if tag == "config":
            import yaml

            try:
                config = yaml.safe_load(text)
            except yaml.YAMLError:
                return
            if isinstance(config, dict):
                self._log_params(flatten_config_dict(config))

    def log_hyperparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Add the params not logged yet (the metrics are in the run's history already)."""
        if self._client is not None:
            self._log_params(params)

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        new: dict[str, str] = {}
        for key, value in params.items():
            name, text = param_key(str(key)), param_value(value)
            if name in self._params or name in new:
                if self._params.get(name, new.get(name)) != text:
                    log.info("mlflow: param %s keeps its logged value %r (not %r)", name,
                             self._params.get(name, new.get(name)), text)
                continue
            new[name] = text
        items = [Param(k, v) for k, v in new.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._safely("log params", self._client.log_batch, self.run_id,
                         params=items[start:start + MAX_PARAMS_PER_BATCH])
        self._params.update(new)

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        """Ignored: MLflow has no histograms."""

    # ---- the end -------------------------------------------------------------------------------

    def finalize(self) -> None:
        """Send buffered metrics, upload ``results.json`` (and the best checkpoint), set the status.

        Errors are logged, never raised: this runs in the job's ``finally`` and must not hide
        the run's own error.
        """
        if self._client is None or self.run_id is None:  # setup failed: no run to end
            self._client = None
            return
        try:
            self._stop_sender()
            results = self._results()
            results_file = Path(self.run_dir) / "results.json"
            if results is not None:
                self._safely("log results.json", self._client.log_artifact, self.run_id, str(results_file))
                best = (results or {}).get("best_model_path")
                if self.log_checkpoints and best and os.path.isfile(best):
                    self._safely("log the best checkpoint", self._client.log_artifact, self.run_id, best, "checkpoints")
            status = STATUSES.get(str((results or {}).get("status")), "FINISHED" if results is None else "FAILED")
            self._safely("end the run", self._client.set_terminated, self.run_id, status)
            if self.parent_run_id:
                self._safely("end the sweep's run", self._client.set_terminated, self.parent_run_id, "FINISHED")
        finally:
            self._client = None

    def _results(self) -> dict[str, Any] | None:
        """This process's ``results.json`` (one older than :meth:`setup` is a previous attempt's)."""
        import json

        path = Path(self.run_dir) / "results.json"
        try:
            if path.stat().st_mtime < self._started - 1.0:
                return None
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return content if isinstance(content, dict) else None

    def _safely(self, what: str, call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except Exception as exc:  # a tracking hiccup must not stop training
            log.warning("mlflow: could not %s for run %s: %s: %s", what, self.run_id, type(exc).__name__,
                        first_line(exc))


# ---- helpers -----------------------------------------------------------------------------------


def param_value(value: Any) -> str:
    """``str(value)`` as MLflow stores it, cut to its length limit with a marker."""
    text = str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[:MAX_PARAM_VALUE_LENGTH - len(TRUNCATED)] + TRUNCATED
    return text


def param_key(key: str) -> str:
    """``key``, or (past MLflow's limit) its start and a short hash, so it stays unique."""
    if len(key) <= MAX_PARAM_KEY_LENGTH:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{key[:MAX_PARAM_KEY_LENGTH - 9]}~{digest}"


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///path`` URI (``sqlite:////abs`` is absolute)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix):].split("?")[0]).expanduser()


def _number(value: Any) -> float:
    if hasattr(value, "item"):  # tensors and numpy scalars
        value = value.item()
    return float(value)


def read_run_id(path: Path | None) -> str | None:
    """The run id kept in ``path`` (``mlflow_run_id``, ``mlflow_parent_run_id``), or ``None``."""
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@contextlib.contextmanager
def _locked(path: Path | None) -> Iterator[None]:
    """An exclusive lock on ``path.lock`` (processes of one sweep); nothing when ``path`` is ``None``."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: jobs of a sweep run one after another unless a launcher says otherwise
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _git_tags() -> dict[str, str]:
    """``mlflow.source.git.commit`` of the working directory, when git answers within two seconds."""
    commit = git_commit(Path.cwd(), timeout=2)
    return {"mlflow.source.git.commit": commit} if commit else {}


def _config_error(key: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(f"{CONFIG_KEY}.{key}" if key else CONFIG_KEY, message)])
