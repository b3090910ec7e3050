"""What PJRT_DEVICE=CPU with CPU_NUM_DEVICES=2 gives (see docs/xla.md for the full story).

Each case runs in a fresh interpreter: the XLA runtime starts once per process and
``torch_xla.launch`` refuses to run after it has started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.xla


def run_script(tmp_path: Path, source: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # A file, not ``-c``: torch_xla.launch spawns a process that re-imports the main module.
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PJRT_DEVICE="CPU", CPU_NUM_DEVICES="2")
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cpu_num_devices_gives_two_devices(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        import torch_xla, torch_xla.runtime as xr
        print("DEVICES", len(torch_xla.devices()), xr.addressable_device_count())
        """
    )
    assert "DEVICES 2 2" in result.stdout, result.stderr[-3000:]


def test_launch_runs_one_process_with_a_thread_per_device(tmp_path: Path) -> None:
    # No collective here: between the threads of one process they deadlock whenever both
    # threads compile the graph (docs/xla.md), so they cannot be tested reliably on the CPU.
    result = run_script(
        tmp_path,
        """
        import os, threading
        import torch, torch_xla
        import torch_xla.runtime as xr

        LOCK = threading.Lock()

        def fn(index):
            device = torch_xla.device()
            value = (torch.ones(2, device=device) * (index + 1)).sum()
            torch_xla.sync()
            fields = ["REPLICA", index, xr.world_size(), os.getpid(), threading.get_ident(), device, value.cpu().item()]
            with LOCK:  # one line per replica: the two threads' prints must not interleave
                print(*fields, flush=True)

        if __name__ == "__main__":
            torch_xla.launch(fn)
        """
    )
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("REPLICA")]
    assert len(lines) == 2, result.stdout + result.stderr[-3000:]
    lines.sort()
    assert [line[1] for line in lines] == ["0", "1"]
    assert all(line[2] == "2" for line in lines)  # world size 2
    assert lines[0][3] == lines[1][3]  # one process ...
    assert lines[0][4] != lines[1][4]  # ... with two threads
    assert [line[5] for line in lines] == ["xla:0", "xla:1"]
    assert [line[6] for line in lines] == ["2.0", "4.0"]
