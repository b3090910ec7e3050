"""Several nodes, one run folder: the node agents agree on whose folder the run uses.

Each node runs the same ``dtrain ... accelerator.num_nodes=N accelerator.rdzv_endpoint=H:P``, so
Hydra has made a folder on each before any code of ours runs. The launching processes meet in a
``TCPStore`` at the rendezvous endpoint (the elastic agents' c10d rendezvous reuses the same
multi-tenant server), and the first to arrive wins: every worker of every node writes into the
winner's folder, and the other nodes remove the folders they had just made (``.hydra/`` and a
``train.log`` of a few lines), sending their launcher's log lines to the winner's ``train.log``.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from declarative_train.launch.logs import redirect_file_logs

log = logging.getLogger(__name__)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` -> (host, port)."""
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def run_id(endpoint: str) -> str:
    """The elastic run id every node derives alike from the endpoint."""
    return "dtrain-" + endpoint.replace(":", "-")


def connect(endpoint: str, timeout_s: int) -> dist.TCPStore:
    """Host the store at ``endpoint`` if this machine can, else connect to the node that does."""
    from torch.distributed.elastic.rendezvous.utils import _matches_machine_hostname

    host, port = parse_endpoint(endpoint)
    timeout = timedelta(seconds=timeout_s)
    if _matches_machine_hostname(host):
        try:
            return dist.TCPStore(host, port, is_master=True, multi_tenant=True, timeout=timeout)
        except (RuntimeError, ValueError, OSError):  # another node agent on this machine hosts it
            pass
    return dist.TCPStore(host, port, is_master=False, multi_tenant=True, timeout=timeout)


def agree_on_run_dir(store: dist.Store, own_dir: Path) -> Path:
    """The run folder of the first node to ask; other nodes drop ``own_dir``."""
    own = str(own_dir.resolve())
    winner = store.compare_set("dtrain/launch/run_dir", "", own).decode()
    if winner == own:
        log.info("node agents: this node's folder %s is the run folder", own)
        return own_dir
    winner_dir = Path(winner)
    winner_dir.mkdir(parents=True, exist_ok=True)  # a node without a shared file system
    redirect_file_logs(winner_dir / "train.log")
    shutil.rmtree(own_dir, ignore_errors=True)
    log.info("node agents: using the run folder %s of another node (removed %s)", winner_dir, own_dir)
    return winner_dir
