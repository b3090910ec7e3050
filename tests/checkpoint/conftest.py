"""Checkpoint tests that need a training state use the engine tests' small executors."""

from tests.engine.conftest import make_executor

__all__ = ["make_executor"]
