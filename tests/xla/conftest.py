"""The XLA tier: runs in the venv from scripts/xla_env.sh, on the CPU (``PJRT_DEVICE=CPU``).

Without torch-xla the tests skip, unless ``DTRAIN_XLA_REQUIRED=1`` (set by
scripts/run_xla_tests.sh), where a missing torch-xla is an error rather than a silent skip.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PJRT_DEVICE", "CPU")

from declarative_train.accelerators.xla import (  # noqa: E402
    INSTALL_HINT,
    XLAAccelerator,
    torch_xla_installed,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch_xla_installed():
        return
    if os.environ.get("DTRAIN_XLA_REQUIRED") == "1":
        raise pytest.UsageError(f"DTRAIN_XLA_REQUIRED=1 but torch-xla is missing: {INSTALL_HINT}")
    skip = pytest.mark.skip(reason=f"torch-xla is not installed: {INSTALL_HINT}")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def accelerator() -> XLAAccelerator:
    """One set-up accelerator for the session (the XLA runtime starts once per process)."""
    acc = XLAAccelerator()
    acc.setup()
    return acc
