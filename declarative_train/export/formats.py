"""The four export formats: how each is written from a module and read back into something callable.

Every format takes an eval-mode module and an example input batch, writes one file, and can load
that file again with its own runtime (onnxruntime, ``torch.export.load``, ``torch.jit.load``,
``safetensors``) into a function from a batch to the outputs, so the caller can compare it with
eager PyTorch. The batch dimension is dynamic in the formats that trace a graph.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from declarative_train.errors import ExportError

Runner = Callable[[torch.Tensor], torch.Tensor]
INPUT_NAME, OUTPUT_NAME = "inputs", "outputs"


@attrs.frozen
class Format:
    """One export format: its file extension and the packages (pip extra) it needs."""

    name: str
    extension: str
    packages: tuple[str, ...]
    extra: str | None
    describe: str

    def missing_packages(self) -> list[str]:
        """The packages this format needs that are not installed."""
        return [p for p in self.packages if importlib.util.find_spec(p) is None]


FORMATS = {
    "onnx": Format("onnx", ".onnx", ("onnx", "onnxscript", "onnxruntime"), "export",
                   "ONNX through torch.onnx.export's dynamo exporter, checked in onnxruntime"),
    "exported_program": Format("exported_program", ".pt2", (), None,
                               "torch.export.export + torch.export.save, checked with torch.export.load"),
    "torchscript": Format("torchscript", ".ts", (), None, "torch.jit.trace, checked with torch.jit.load"),
    "safetensors": Format("safetensors", ".safetensors", ("safetensors",), "export",
                          "the weights only, with the model config as metadata"),
}


def write(fmt: str, module: nn.Module, example: torch.Tensor, path: Path, *, opset: int,
          metadata: Mapping[str, str]) -> None:
    """Write ``module`` (in eval mode) as ``fmt`` to ``path``; raise :class:`ExportError` if it cannot."""
    try:
        with _quiet_exporters():
            _write(fmt, module, example, path, opset, metadata)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"writing {fmt} ({FORMATS[fmt].describe}) failed for {_describe(module)}: "
                          f"{type(exc).__name__}: {_first_lines(exc)}") from exc


def _write(fmt: str, module: nn.Module, example: torch.Tensor, path: Path, opset: int,
           metadata: Mapping[str, str]) -> None:
    if fmt == "onnx":
        _write_onnx(module, example, path, opset)
    elif fmt == "exported_program":
        torch.export.save(_exported(module, example), str(path))
    elif fmt == "torchscript":
        with torch.no_grad():
            torch.jit.trace(module, example).save(str(path))
    elif fmt == "safetensors":
        from safetensors.torch import save_model

        save_model(module, str(path), metadata=dict(metadata))
    else:
        raise ValueError(f"unknown format {fmt!r}")


def load(fmt: str, path: Path, module: nn.Module) -> Runner:
    """Read ``path`` back with ``fmt``'s runtime; ``module`` is the architecture safetensors fills."""
    with _quiet_exporters():
        return _load(fmt, path, module)


def _load(fmt: str, path: Path, module: nn.Module) -> Runner:
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda batch: torch.from_numpy(session.run(None, {INPUT_NAME: batch.numpy()})[0])
    if fmt == "exported_program":
        program = torch.export.load(str(path)).module()
        return lambda batch: program(batch)
    if fmt == "torchscript":
        scripted = torch.jit.load(str(path), map_location="cpu")
        return lambda batch: scripted(batch)
    if fmt == "safetensors":
        from safetensors.torch import load_model

        fresh = copy.deepcopy(module)
        for tensor in [*fresh.parameters(), *fresh.buffers()]:
            with torch.no_grad():
                tensor.zero_()  # the weights must come from the file, not from the copy
        missing, unexpected = load_model(fresh, str(path), strict=False)
        if missing or unexpected:
            raise ExportError(f"{path} does not fit {_describe(module)}: missing {missing}, unexpected {unexpected}")
        return lambda batch: fresh(batch)
    raise ValueError(f"unknown format {fmt!r}")


def metadata_config(config: Mapping[str, Any]) -> dict[str, str]:
    """safetensors metadata (strings only): the model config as JSON."""
    return {"format": "declarative_train", "config": json.dumps(config, sort_keys=True, default=str)}


def _batch_dim() -> dict[int, Any]:
    return {0: torch.export.Dim("batch", min=1)}


def _exported(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    return torch.export.export(module, (example,), dynamic_shapes=(_batch_dim(),))


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    try:
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=(_batch_dim(),), verbose=False,
        )
    except Exception as exc:
        raise ExportError(_onnx_failure(exc, module, example)) from exc
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)  # one self-contained file


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Keep the exporters' progress lines and deprecation notes out of the command's output."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _onnx_failure(exc: Exception, module: nn.Module, example: torch.Tensor) -> str:
    """The ONNX exporter's own summary, with the operator it could not convert and where it is used."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    summary = text.split("## Exception summary", 1)[-1].split("(Refer to the full stack trace", 1)[0]
    lines = [line.strip() for line in summary.strip().splitlines() if line.strip() and line.strip() != "⬆️"]
    operator = re.search(r"aten\.\w+", summary)
    where = ""
    if operator is not None:
        modules = _modules_using(module, example, operator.group(0))
        where = f" in module {', '.join(modules)}" if modules else ""
    what = f"cannot convert {operator.group(0)}{where}" if operator else "failed"
    return f"the ONNX exporter {what} of {_describe(module)}: " + _first_lines(Exception("\n".join(lines)), 3)


def _modules_using(module: nn.Module, example: torch.Tensor, operator: str) -> list[str]:
    """The submodules (path and class) whose forward calls ``operator``, as torch.export records them."""
    try:
        program = _exported(module, example)
    except Exception:
        return []
    found = []
    for node in program.graph.nodes:
        if node.op == "call_function" and str(node.target).startswith(operator + "."):
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            if stack:
                path, cls = stack[-1]
                found.append(f"{path} ({cls.rsplit('.', 1)[-1] if isinstance(cls, str) else cls.__name__})")
    return sorted(set(found))


def _describe(module: nn.Module) -> str:
    inner = getattr(module, "net", None)
    return type(module).__name__ + (f" ({type(inner).__name__})" if isinstance(inner, nn.Module) else "")


def _first_lines(exc: BaseException, lines: int = 6) -> str:
    text = str(exc).strip().splitlines()
    return "\n".join(text[:lines]) + ("\n..." if len(text) > lines else "")
