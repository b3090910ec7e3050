"""``strategy=ddp``: workers started by torch.distributed.elastic (the engine behind ``torchrun``).

The launching process has composed and validated the config; it writes the resolved config into
the run folder and starts ``python -m declarative_train.launch.worker RUN_DIR`` once per
device: fresh interpreters, so DataLoader workers and everything else behave as in a plain script.
The agent watches them every 0.1 s; when one fails it stops the others, and :func:`launch` raises
``RunFailed`` naming the failed rank (after ``max_restarts`` elastic restarts, if configured). A
signal to the launching process (SIGTERM, Ctrl-C) stops the workers and raises ``Interrupted``.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from declarative_train.distributed.plan import LaunchPlan
from declarative_train.errors import Interrupted, RunFailed
from declarative_train.launch import nodes
from declarative_train.launch.logs import quiet_torch_elastic
from declarative_train.launch.resolved import write_resolved
from declarative_train.utils.io import atomic_write_json

log = logging.getLogger("declarative_train")

WORKER_MODULE = "declarative_train.launch.worker"
MONITOR_INTERVAL_S = 0.1


def launch(cfg: DictConfig, plan: LaunchPlan, job: str = "train") -> dict[str, Any]:
    """Run ``job`` (a name in the worker's job table) on ``plan.devices`` workers per node; return rank 0's ``results.json``."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    acc = cfg.accelerator
    run_dir = Path(cfg.paths.output_dir)
    write_resolved(cfg, run_dir, job)
    keepalive = None
    if plan.num_nodes > 1:
        keepalive = nodes.connect(acc.rdzv_endpoint, acc.timeout_s)
        run_dir = nodes.agree_on_run_dir(keepalive, run_dir)
        endpoint, run_id = acc.rdzv_endpoint, nodes.run_id(acc.rdzv_endpoint)
    else:
        endpoint, run_id = "localhost:0", f"dtrain-{uuid.uuid4().hex[:12]}"
    error_dir = tempfile.mkdtemp(prefix="dtrain_elastic_")
    config = LaunchConfig(
        min_nodes=plan.num_nodes, max_nodes=plan.num_nodes, nproc_per_node=plan.devices,
        run_id=run_id, rdzv_backend="c10d", rdzv_endpoint=endpoint,
        rdzv_configs={"timeout": acc.timeout_s}, max_restarts=acc.max_restarts,
        monitor_interval=MONITOR_INTERVAL_S, logs_specs=DefaultLogsSpecs(log_dir=error_dir),
    )
    quiet_torch_elastic()
    log.info("starting %d worker(s) per node on %d node(s) (torch.distributed.elastic, max_restarts=%d) for %s",
             plan.devices, plan.num_nodes, acc.max_restarts, run_dir)
    try:
        elastic_launch(config, sys.executable)("-m", WORKER_MODULE, str(run_dir))
    except ChildFailedError as exc:
        message = describe_failure(exc)
        log.error("run failed: %s", message)
        mark_ended(run_dir, "failed", message)
        raise RunFailed(message) from None
    except SignalException as exc:  # the agent has stopped the workers
        stopped = workers_stopped(int(exc.sigval), run_dir, resumable=job == "train")
        mark_ended(run_dir, stopped.status, str(stopped))
        raise stopped from None
    finally:
        shutil.rmtree(error_dir, ignore_errors=True)
        del keepalive
    return read_results(run_dir)


def workers_stopped(signum: int, run_dir: Path, resumable: bool = True) -> Interrupted:
    """The error for a signal to the launching process (SIGTERM, Ctrl-C) that stopped the workers."""
    resume = f"; continue from the newest last.ckpt with resume=auto resume_dir={run_dir}" if resumable else ""
    return Interrupted(signum, f"{signal.Signals(signum).name} received: workers stopped{resume}")


def describe_failure(exc: Any) -> str:
    """One line for a ``ChildFailedError``: the first failed rank, how it ended, its message."""
    rank, failure = exc.get_first_failure()
    if failure.exitcode < 0:
        return f"worker rank {rank} (pid {failure.pid}) was killed by {failure.signal_name()}"
    has_message = failure.message and not failure.message.startswith("To enable traceback")
    detail = f": {failure.message}" if has_message else ""
    return f"worker rank {rank} (pid {failure.pid}) exited with code {failure.exitcode}{detail}"


def mark_ended(run_dir: Path, status: str, message: str) -> None:
    """Make ``results.json`` say how the run ended and why, keeping rank 0's counters."""
    results = read_results(run_dir)
    results.update(status=status, error=message)
    atomic_write_json(run_dir / "results.json", results)


def read_results(run_dir: Path) -> dict[str, Any]:
    """``run_dir/results.json`` as a dict (empty when rank 0 has not written one)."""
    path = run_dir / "results.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
