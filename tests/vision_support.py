"""Marking tests that need torchvision/timm: ``@vision_test`` (the ``vision`` tier).

They skip where torchvision does not import (the main venv: its CPU-only torch and PyPI's
torchvision do not fit), unless ``DTRAIN_VISION_REQUIRED=1`` (scripts/run_vision_tests.sh), where
they run and fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

from declarative_train.utils.extras import try_import, vision_available

F = TypeVar("F", bound=Callable[..., object])

INSTALL = "pip install 'declarative_train[vision]'"
REQUIRED = os.environ.get("DTRAIN_VISION_REQUIRED") == "1"


def vision_test(fn: F) -> F:
    """Mark ``fn`` as a vision-tier test, skipped where torchvision does not import."""
    reason = f"torchvision does not import here ({try_import('torchvision')[1]}): {INSTALL}"
    skip = pytest.mark.skipif(not (vision_available() or REQUIRED), reason=reason)
    return pytest.mark.vision(skip(fn))  # type: ignore[no-any-return]


def without_vision(fn: F) -> F:
    """Run ``fn`` only where torchvision does not import (the missing-extra messages)."""
    return pytest.mark.skipif(vision_available(), reason="torchvision imports here")(fn)  # type: ignore[no-any-return]
