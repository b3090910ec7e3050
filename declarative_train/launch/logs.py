"""Log lines of every rank in the run's one ``train.log``, each tagged with its rank.

Every process appends whole lines (one ``write`` per record) to the same file, so lines of
different ranks interleave but never mix. On the console, rank 0 prints what a single process
would; other ranks print warnings and errors only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LINE_FORMAT = "[%(asctime)s][rank {rank}][%(name)s][%(levelname)s] %(message)s"
_MARK = "_dtrain_worker_handler"


def rank_formatter(rank: int) -> logging.Formatter:
    """The ``train.log`` line format with ``[rank N]`` after the time."""
    return logging.Formatter(LINE_FORMAT.format(rank=rank))


def configure_worker_logging(run_dir: str | Path, rank: int) -> None:
    """Send this worker's log records to ``run_dir/train.log`` (appending) and the console."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    formatter = rank_formatter(rank)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(Path(run_dir) / "train.log", mode="a")
    console = logging.StreamHandler(sys.stdout if rank == 0 else sys.stderr)
    console.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet_torch_elastic()


def tag_rank(rank: int) -> None:
    """Put ``[rank N]`` into the lines of the handlers already configured (by Hydra)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(rank_formatter(rank))


def redirect_file_logs(log_file: str | Path) -> None:
    """Point the file handlers of the root logger at ``log_file`` (appending)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        replacement = logging.FileHandler(log_file, mode="a")
        replacement.setFormatter(handler.formatter)
        replacement.setLevel(handler.level)
        root.removeHandler(handler)
        handler.close()
        root.addHandler(replacement)


def quiet_torch_elastic() -> None:
    """torch.distributed.elastic logs its launch settings at INFO; keep its warnings only."""
    logging.getLogger("torch.distributed.elastic").setLevel(logging.WARNING)
