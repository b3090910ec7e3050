"""``strategy=ddp_spawn``: workers started by ``torch.multiprocessing.spawn`` from this process.

The resolved config travels to the workers as a plain dict (pickled by ``spawn``); rank 0 sends
the weights the model has at the end of fit (``torch.save`` bytes) and the results back through a
queue, so after the call the launching process holds both. Compared with ``ddp`` the workers are
children of the launching process (handy from a notebook or a Python API call), at the cost of
pickling the config and re-importing everything in each child.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import socket
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf

from declarative_train.distributed.group import leave_process_group
from declarative_train.distributed.plan import LaunchPlan
from declarative_train.engine import Event
from declarative_train.errors import RunFailed
from declarative_train.jobs.train import run_job
from declarative_train.launch.logs import configure_worker_logging
from declarative_train.launch.resolved import from_container

log = logging.getLogger("declarative_train")

POLL_S = 0.2


@attrs.define
class SpawnOutcome:
    """What the workers of a ``ddp_spawn`` job hand back to the launching process."""

    results: dict[str, Any]
    """Rank 0's ``results.json`` content."""
    state_dict: dict[str, torch.Tensor] | None
    """The task's weights at the end of fit (CPU tensors); ``None`` when the job did not fit."""


def launch(cfg: DictConfig, plan: LaunchPlan) -> SpawnOutcome:
    """Run the job on ``plan.devices`` spawned workers; return rank 0's results and weights."""
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    config = OmegaConf.to_container(cfg, resolve=True)
    queue = mp.get_context("spawn").SimpleQueue()
    log.info("spawning %d workers (torch.multiprocessing.spawn) for %s", plan.devices, cfg.paths.output_dir)
    context = mp.start_processes(_worker, args=(plan.devices, _free_port(), config, queue),
                                 nprocs=plan.devices, join=False, start_method="spawn")
    reply: dict[str, Any] | None = None
    try:
        while not context.join(timeout=POLL_S):
            # Read while the workers run: a large reply would block rank 0 on a full pipe.
            if reply is None and not queue.empty():
                reply = queue.get()
    except ProcessRaisedException as exc:
        raise RunFailed(f"worker rank {exc.error_index} (pid {exc.error_pid}) failed: {_last_line(str(exc))}") from None
    except ProcessExitedException as exc:
        how = f"was killed by {exc.signal_name}" if exc.signal_name else f"exited with code {exc.exit_code}"
        raise RunFailed(f"worker rank {exc.error_index} (pid {exc.error_pid}) {how}") from None
    if reply is None and not queue.empty():
        reply = queue.get()
    if reply is None:
        raise RunFailed("rank 0 ended without sending its results")
    state = reply["state_dict"]
    weights = torch.load(io.BytesIO(state), weights_only=True) if state is not None else None
    return SpawnOutcome(results=reply["results"], state_dict=weights)


def _worker(index: int, world_size: int, port: int, config: dict[str, Any], queue: Any) -> None:
    # A spawned child inherits "spawn" as its default start method, which would make every
    # DataLoader worker re-import torch each epoch; use the platform's default (fork on Linux).
    multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
    os.environ.update({"RANK": str(index), "LOCAL_RANK": str(index), "WORLD_SIZE": str(world_size),
                       "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    cfg = from_container(config)
    configure_worker_logging(Path(cfg.paths.output_dir), index)
    fitted: dict[str, bytes | None] = {"state_dict": None}

    def keep_weights(executor: Any) -> None:
        buffer = io.BytesIO()
        torch.save(executor.task.state_dict(), buffer)
        fitted["state_dict"] = buffer.getvalue()

    def subscribe(executor: Any) -> None:
        if index == 0:
            executor.events.on(Event.FIT_END, keep_weights)

    try:
        results = run_job(cfg, on_executor=subscribe)
    finally:
        leave_process_group()
    if index == 0:
        queue.put({"results": results, "state_dict": fitted["state_dict"]})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
