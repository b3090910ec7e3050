"""Export one module to a file that is checked before it is given its name.

The file is written under a temporary name beside the target, loaded back with its format's
runtime, run on a batch of a size other than the traced example's, and compared with eager
PyTorch; only a file that reproduces the module within the tolerance is renamed into place.
Anything else raises :class:`ExportError` and leaves no file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import torch
from torch import nn

from declarative_train.errors import ExportError
from declarative_train.export import formats
from declarative_train.utils.io import fsync_dir


@attrs.frozen
class ExportReport:
    """What an export wrote and how closely the file reproduces the module."""

    format: str
    path: Path
    input_shape: list[int | str]
    input_dtype: str
    output_shape: list[int | str]
    max_abs_diff: float
    tolerance: float
    check_batch_size: int


def export_model(module: nn.Module, example: torch.Tensor, check: torch.Tensor, fmt: str, path: Path, *,
                 tolerance: float, opset: int = 18, metadata: Mapping[str, str] = {}) -> ExportReport:  # noqa: B006
    """Write ``module`` as ``fmt`` to ``path``, traced on ``example`` and checked on ``check``.

    ``check`` should have another batch size than ``example``, so the dynamic batch dimension is
    exercised. Raises :class:`ExportError` when the module cannot be exported, the file cannot be
    written, or its outputs differ from eager PyTorch by more than ``tolerance``.
    """
    module.eval()
    with torch.no_grad():
        expected = module(check)
    with _temporary_beside(path) as partial:
        formats.write(fmt, module, example, partial, opset=opset, metadata=metadata)
        try:
            run = formats.load(fmt, partial, module)
            with torch.no_grad():
                produced = run(check)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"the {fmt} file written for {path} does not run in its runtime: "
                              f"{type(exc).__name__}: {exc}") from exc
        if produced.shape != expected.shape:
            raise ExportError(f"the {fmt} file gives outputs of shape {list(produced.shape)} for a batch of "
                              f"{check.shape[0]}; eager PyTorch gives {list(expected.shape)}")
        diff = float((produced.float() - expected.float()).abs().max()) if expected.numel() else 0.0
        if not diff <= tolerance:  # also catches NaN
            raise ExportError(f"the {fmt} file's outputs differ from eager PyTorch by {diff:.3g} "
                              f"(max abs, batch of {check.shape[0]}), above the tolerance {tolerance:g}")
        os.replace(partial, path)
        fsync_dir(path.parent)
    return ExportReport(
        format=fmt, path=path,
        input_shape=["batch", *example.shape[1:]],  # checked on another batch size than traced
        input_dtype=str(example.dtype).removeprefix("torch."),
        output_shape=["batch", *expected.shape[1:]],
        max_abs_diff=diff, tolerance=tolerance, check_batch_size=int(check.shape[0]),
    )


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A fresh temporary file name in ``path``'s folder, removed unless it was renamed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
