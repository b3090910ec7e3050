"""A text file written from the Python standard library's own sources, for ``experiment=gpt_text``.

Every Python installation carries the text: :func:`write_python_source_text` concatenates the
source of a few pure-Python standard modules (or, where an installation ships only bytecode,
their docstrings) into one file, so the preset trains offline with nothing downloaded.
:class:`PythonSourceText` is ``data=text`` over that file, written at setup when missing.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

from declarative_train.data.text import OWNER, TextData
from declarative_train.errors import ArgumentError

#: Pure-Python standard modules, about 390 kB of source together.
DEFAULT_MODULES = ("argparse", "textwrap", "difflib", "fractions", "heapq", "functools", "statistics", "pprint",
                   "calendar")


def module_text(name: str) -> str:
    """The source of the standard module ``name``, else its docstrings (bytecode-only installs)."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ArgumentError(OWNER, "modules", f"{name!r} does not import here: {exc}") from None
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        docs = [inspect.getdoc(obj) for _, obj in inspect.getmembers(module)]
        return "\n\n".join([inspect.getdoc(module) or "", *[doc for doc in docs if doc]])


def write_python_source_text(path: str | Path, modules: tuple[str, ...] | list[str] = DEFAULT_MODULES) -> Path:
    """Write the text of ``modules`` to ``path`` (atomically; kept when it exists) and return the path."""
    file = Path(path)
    if file.is_file():
        return file
    text = "\n\n".join(f"# ---- {name}\n{module_text(name)}" for name in modules)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, file)  # ranks or runs writing the same file at once each write a whole one
    return file


class PythonSourceText(TextData):
    """``data=text`` over ``path``, written first from the standard ``modules``' source when missing."""

    def __init__(self, *, path: str, modules: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        self.modules = list(modules) if modules is not None else list(DEFAULT_MODULES)
        if not self.modules:
            raise ArgumentError(OWNER, "modules", "must name at least one standard module")

    def setup(self) -> None:
        if not self.datasets:
            write_python_source_text(self.path, self.modules)
        super().setup()
