"""Callbacks are tested on small executors built through the Python API."""

from tests.engine.conftest import make_executor

__all__ = ["make_executor"]
