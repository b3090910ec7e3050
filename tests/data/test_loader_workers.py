"""A DataLoader worker forked while its parent is being killed exits instead of waiting forever."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from torch.utils.data import DataLoader, Dataset
    from declarative_train.data.loader_workers import bind_to_parent

    class Items(Dataset):
        def __len__(self):
            return 100
        def __getitem__(self, index):
            return index

    def slow_start(worker_id):  # the parent is killed while the worker is still starting
        Path(sys.argv[1], str(os.getpid())).touch()
        time.sleep(1.5)

    loader = DataLoader(Items(), num_workers=1, worker_init_fn=slow_start)
    bind_to_parent(loader)
    iterator = iter(loader)
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # an exited child nobody has reaped yet is gone


def test_an_orphaned_worker_exits(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    (worker,) = [int(p.name) for p in tmp_path.iterdir()]
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
