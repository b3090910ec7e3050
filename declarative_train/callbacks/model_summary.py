"""The model summary: modules, parameter counts, output shapes and memory, logged and in ``summary.txt``."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from declarative_train.callbacks.base import Callback
from declarative_train.engine import Event, Subscription, TrainingContext, unwrapped
from declarative_train.errors import ArgumentError
from declarative_train.utils.dtensors import is_dtensor, local_tensor
from declarative_train.utils.io import atomic_write_bytes

log = logging.getLogger("declarative_train")

SUMMARY_FILE = "summary.txt"


@attrs.define
class ModuleRow:
    """One line of the table: a module down to ``max_depth`` and what it holds."""

    name: str
    kind: str
    params: int
    trainable: int
    output_shape: str = "?"


@attrs.define
class ModelTable:
    """A model's summary: rows, totals and memory, rendered by :meth:`render`."""

    rows: list[ModuleRow]
    total_params: int
    trainable_params: int
    param_bytes: int
    grad_bytes: int
    optimizer_bytes: int | None = None  # None: the optimizer's state is not allocated yet
    #: Ranks the parameters are sharded over (FSDP; 1: not sharded), and this rank's bytes of
    #: parameters, gradients and optimizer state (the local shards).
    sharded_over: int = 1
    shard_bytes: tuple[int, int, int | None] | None = None

    def render(self) -> str:
        """The table as fixed-width text, then the totals."""
        header = ("", "Name", "Type", "Params", "Trainable", "Output shape")
        cells = [(str(i), r.name, r.kind, _count(r.params), _count(r.trainable), r.output_shape)
                 for i, r in enumerate(self.rows)]
        widths = [max(len(row[c]) for row in [header, *cells]) for c in range(len(header))]
        lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                 for row in [header, *cells]]
        lines.insert(1, "-" * len(max(lines, key=len)))
        lines += [
            "",
            f"{_count(self.trainable_params)} trainable parameters",
            f"{_count(self.total_params - self.trainable_params)} non-trainable parameters",
            f"{_count(self.total_params)} parameters in all",
            f"memory: {_memory(self.param_bytes, self.grad_bytes, self.optimizer_bytes)}",
        ]
        if self.sharded_over > 1 and self.shard_bytes is not None:
            lines.append(f"sharded over {self.sharded_over} ranks, this rank holds: {_memory(*self.shard_bytes)}")
        return "\n".join(lines)


def summarize(module: nn.Module, max_depth: int = 1, optimizer: torch.optim.Optimizer | None = None,
              output_shapes: dict[str, str] | None = None) -> ModelTable:
    """The summary of ``module``'s submodules down to ``max_depth`` (1: its children)."""
    parameters = list(module.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    rows = []
    for name, child in _modules(module, max_depth):
        params = list(child.parameters())
        rows.append(ModuleRow(name, type(child).__name__, sum(p.numel() for p in params),
                              sum(p.numel() for p in params if p.requires_grad),
                              (output_shapes or {}).get(name, "?")))
    states = None  # the optimizer's state tensors, once allocated
    if optimizer is not None and optimizer.state:
        states = [value for state in optimizer.state.values() for value in state.values()
                  if isinstance(value, torch.Tensor)]
    return ModelTable(
        rows=rows, total_params=sum(p.numel() for p in parameters), trainable_params=sum(p.numel() for p in trainable),
        param_bytes=_bytes(parameters), grad_bytes=_bytes(trainable),
        optimizer_bytes=None if states is None else _bytes(states),
        sharded_over=max((_shard_count(p) for p in parameters), default=1),
        shard_bytes=(_bytes(parameters, local=True), _bytes(trainable, local=True),
                     None if states is None else _bytes(states, local=True)),
    )


def _bytes(tensors: Sequence[torch.Tensor], *, local: bool = False) -> int:
    """The bytes of ``tensors``: whole, or (``local``) this rank's shards of distributed tensors."""
    return sum(t.numel() * t.element_size() for t in (map(local_tensor, tensors) if local else tensors))


def _shard_count(tensor: Any) -> int:
    """How many ranks ``tensor`` is sharded over (FSDP's DTensors; 1 for a plain tensor or a replica)."""
    if not is_dtensor(tensor):
        return 1
    return math.prod(tensor.device_mesh.size(dim) for dim, placement in enumerate(tensor.placements)
                     if placement.is_shard())


class ModelSummary(Callback):
    """Logs the model summary and writes ``save_dir/summary.txt`` (rank zero), after the first step.

    The table lists the task's modules down to ``max_depth`` (1: the task's children, e.g. ``net``
    and ``loss``; 2: also their children) with their parameters, trainable parameters and output
    shape, then the totals and the memory of parameters, gradients and the optimizer's state
    (of the whole model; under FSDP a line more: the ranks they are sharded over and what rank 0's
    shards hold). Output shapes are read from the first training step itself (forward hooks that remove
    themselves), so the summary costs no extra forward pass and leaves the run's random numbers
    untouched; it comes once that step is done, when the optimizer's state exists too.
    ``output_shapes=false`` (or ``trainer.compile``) leaves them out. ``max_depth=0`` turns the
    summary off; under ``fast_dev_run`` it is logged but not written.
    """

    def __init__(self, max_depth: int = 1, save_dir: str | None = None, output_shapes: bool = True) -> None:
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0:
            raise ArgumentError("ModelSummary", "max_depth", f"must be an int >= 0, got {max_depth!r}")
        self.max_depth = max_depth
        self.save_dir = save_dir
        self.output_shapes = output_shapes
        self._shapes: dict[str, str] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._first_step: Subscription[TrainingContext] | None = None
        self._done = False

    def attach(self, context: TrainingContext) -> None:
        if self.max_depth == 0 or not context.distribution.is_global_zero:
            return
        self._done = False
        self.listen(context, Event.FIT_START, self._watch)
        # The first step this process runs (global_step 1, or the first after a resume); then off.
        self._first_step = self.listen(context, Event.STEP_END, self._report)
        self.listen(context, Event.FIT_END, self._report)  # a fit without steps

    def _watch(self, context: TrainingContext) -> None:
        if not self.output_shapes or context.settings.compile:
            return
        for name, module in _modules(context.task, self.max_depth):
            self._hooks.append(module.register_forward_hook(self._recorder(name)))

    def _recorder(self, name: str) -> Any:
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            self._shapes.setdefault(name, _shape(output))
        return record

    def _report(self, context: TrainingContext) -> None:
        if self._first_step is not None:
            self._first_step.remove()
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._done:
            return
        self._done = True
        text = summarize(context.task, self.max_depth, context.optimizer, self._shapes).render()
        log.info("model summary:\n%s", text)
        if self.save_dir is not None and not context.settings.fast_dev_run:  # fast_dev_run writes no files
            atomic_write_bytes(os.path.join(self.save_dir, SUMMARY_FILE), (text + "\n").encode())


def _modules(module: nn.Module, max_depth: int) -> Iterator[tuple[str, nn.Module]]:
    """Submodules down to ``max_depth``, parents before children, named by their dotted path."""
    def walk(parent: nn.Module, prefix: str, depth: int) -> Iterator[tuple[str, nn.Module]]:
        for name, child in parent.named_children():
            path = f"{prefix}{name}"
            yield path, child
            if depth < max_depth:
                yield from walk(child, path + ".", depth + 1)
    yield from walk(unwrapped(module), "", 1)


def _shape(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return str(list(output.shape))
    if isinstance(output, (tuple, list)):
        return "(" + ", ".join(_shape(item) for item in output) + ")"
    return type(output).__name__


def _memory(params: int, grads: int, optimizer: int | None) -> str:
    mb = 1024 * 1024
    state = "not allocated until the first step" if optimizer is None else f"{optimizer / mb:.3f} MB"
    return f"parameters {params / mb:.3f} MB, gradients {grads / mb:.3f} MB, optimizer state {state}"


def _count(number: int) -> str:
    """``1234567`` -> ``1.2 M``, as Lightning prints parameter counts."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if number >= size:
            return f"{number / size:.1f} {unit}"
    return str(number)
