"""Optional dependencies: whether one imports, and why not.

A wheel built against another torch can fail at import with a ``RuntimeError`` (PyPI's
torchvision beside a CPU-only torch: "operator torchvision::nms does not exist") or an
``OSError`` (a missing shared library) rather than ``ImportError``; all three mean "not usable".
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

#: The extras of ``pyproject.toml`` that install an optional module.
EXTRA_OF = {"torchvision": "vision", "timm": "vision", "PIL": "vision"}


@functools.cache
def try_import(name: str) -> tuple[ModuleType | None, str]:
    """``(module, "")``, or ``(None, why it does not import)``."""
    try:
        return importlib.import_module(name), ""
    except (ImportError, RuntimeError, OSError) as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def vision_available() -> bool:
    """Whether torchvision imports (``data=image_folder``, ``model=torchvision``)."""
    return try_import("torchvision")[0] is not None


def install_hint(module: str) -> str:
    """`` (pip install 'declarative_train[vision]')`` for a module an extra installs, else ``""``."""
    extra = EXTRA_OF.get(module.split(".")[0])
    return f" (pip install 'declarative_train[{extra}]')" if extra else ""
