"""The XLA accelerator (``tpu``): torch-xla on TPUs, or on the CPU with ``PJRT_DEVICE=CPU``.

torch-xla is imported lazily, so this module imports without it; ``is_available()`` is then
False and ``missing_reason()`` says how to install it. XLA tensors are lazy: operations are
recorded into a graph that is compiled and run at ``mark_step()`` (``torch_xla.sync()``).
A training loop must therefore mark every step, keep shapes fixed (``drop_last=True``) and avoid
host syncs such as ``.item()`` inside the step, or every step recompiles or stalls.

Checkpoints take the same sealed path as on every device: ``checkpoint_state`` fetches the state's
XLA tensors to the CPU (``state_dict_to_cpu``) before the checkpoint writer sees them.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from declarative_train.accelerators.base import Accelerator
from declarative_train.errors import AcceleratorUnavailable
from declarative_train.utils.tree import iter_tensors, map_tensors, move_to_device

log = logging.getLogger(__name__)

TORCH_XLA_VERSION = "2.9.0"
INSTALL_HINT = (
    f"pip install torch=={TORCH_XLA_VERSION} torch-xla=={TORCH_XLA_VERSION} "
    "(torch-xla needs exactly the torch release of the same version), or run "
    "scripts/xla_env.sh, which builds a separate venv with both"
)




def torch_xla_installed() -> bool:
    """Whether the ``torch_xla`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch_xla") is not None


def _tpu_present() -> bool:
    # The device nodes a TPU VM exposes (v4 and later: /dev/accel*, v2/v3: /dev/vfio/N).
    return bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _metrics() -> Any:
    import torch_xla.debug.metrics as met

    return met


def compile_count() -> int:
    """Graph compilations in this process so far (the ``CompileTime`` metric's sample count)."""
    data = _metrics().metric_data("CompileTime")
    return int(data[0]) if data else 0


def _is_xla_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "xla"


def state_dict_to_cpu(obj: Any) -> Any:
    """Return ``obj`` (a state_dict or any nesting of dicts, lists, tuples) with tensors on the CPU.

    XLA tensors are fetched in one batched transfer after their pending graph has run; CPU
    tensors are detached and kept; tensors on other devices are copied with ``.cpu()``. The
    result loads anywhere with ``torch.load`` and ``load_state_dict``.
    """
    xla_tensors = list({id(t): t for t in iter_tensors(obj) if _is_xla_tensor(t)}.values())
    converted: dict[int, torch.Tensor] = {}
    if xla_tensors:
        import torch_xla

        torch_xla.sync()
        fetch = getattr(torch_xla._XLAC, "_xla_get_cpu_tensors", None)
        cpu = fetch(xla_tensors) if fetch is not None else [t.cpu() for t in xla_tensors]
        converted = {id(t): c for t, c in zip(xla_tensors, cpu)}

    def lookup(t: torch.Tensor) -> torch.Tensor:
        if id(t) in converted:
            return converted[id(t)]
        return t.detach().cpu()

    return map_tensors(obj, lookup)


class XLAAccelerator(Accelerator):
    """One XLA device per replica (process or, on a multi-device CPU, thread).

    ``setup()`` picks ``torch_xla.device()``; before it, ``device`` is the index-less
    ``torch.device("xla")`` so that constructing the accelerator never starts the XLA runtime
    (which must not happen before ``torch_xla.launch`` spawns replicas).

    Args:
        reduce_gradients: all-reduce (average) gradients across replicas in
            ``optimizer_step`` via ``xm.optimizer_step``. Turn off when the model is wrapped in
            DDP, which reduces them already.
        recompile_warmup_steps: steps after which a growing compilation count is reported by
            ``warn_if_recompiling``.
        matmul_precision: ``torch_xla.backends.set_mat_mul_precision`` value
            (``default``, ``high``, ``highest``), or None to leave it.
    """

    name: ClassVar[str] = "tpu"
    autocast_device_type: ClassVar[str] = "xla"

    def __init__(
        self,
        device: torch.device | None = None,
        reduce_gradients: bool = True,
        recompile_warmup_steps: int = 3,
        matmul_precision: str | None = None,
    ) -> None:
        super().__init__(device or torch.device("xla"))
        self.reduce_gradients = reduce_gradients
        self.recompile_warmup_steps = recompile_warmup_steps
        self.matmul_precision = matmul_precision
        self._compiles_at_setup = 0
        self._compiles_at_warmup: int | None = None
        self._last_warned_count: int | None = None

    # -- availability ---------------------------------------------------------------------
    @classmethod
    def is_available(cls) -> bool:
        """torch-xla is installed and there is a device: ``PJRT_DEVICE`` is set or a TPU is present.

        Cheap: nothing is imported, so ``accelerator: auto`` never starts the XLA runtime.
        """
        if not torch_xla_installed():
            return False
        return bool(os.environ.get("PJRT_DEVICE")) or _tpu_present()

    @classmethod
    def missing_reason(cls) -> str:
        """What is missing: the package (with the install command) or a device."""
        if not torch_xla_installed():
            return f"torch-xla is not installed: {INSTALL_HINT}"
        if not cls.is_available():
            return ("torch-xla is installed but no XLA device was found: run on a TPU VM, or set "
                    "PJRT_DEVICE=CPU to run XLA on this machine's CPU")
        return ""

    # -- set up -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Select this replica's XLA device and start counting compilations from here."""
        if not torch_xla_installed():
            raise AcceleratorUnavailable(self.missing_reason())
        import torch_xla
        import torch_xla.runtime as xr

        self.device = torch_xla.device()
        if self.matmul_precision:
            from torch_xla.backends import set_mat_mul_precision

            set_mat_mul_precision(self.matmul_precision)
        if xr.addressable_device_count() > 1 and xr.world_size() > 1:
            log.warning(
                "one process drives %d XLA devices (threads); on PJRT_DEVICE=CPU their "
                "collectives can deadlock when the threads compile the same graph at once "
                "(see docs/xla.md)", xr.addressable_device_count())
        self._compiles_at_setup = compile_count()
        self._compiles_at_warmup = None
        self._last_warned_count = None

    def on_logging_step(self, step: int) -> None:
        """Check the compilation count (every ``log_every_n_steps`` optimizer steps)."""
        self.warn_if_recompiling(step)

    def checkpoint_state(self, state: Any) -> Any:
        """All XLA tensors fetched to the CPU in one batched transfer."""
        return state_dict_to_cpu(state)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move the model to this replica's XLA device."""
        return model.to(self.device)

    def wrap_loader(self, loader: DataLoader) -> Iterable[Any]:
        """Wrap ``loader`` in ``MpDeviceLoader``: batches arrive on the device, prefetched by a thread.

        The device loader also marks a step each time it yields a batch.
        """
        import torch_xla.distributed.parallel_loader as pl

        return pl.MpDeviceLoader(loader, self.device)

    @property
    def loader_moves_data(self) -> bool:
        """True: ``wrap_loader`` puts batches on the XLA device."""
        return True

    # -- hot path ---------------------------------------------------------------------------
    def to_device(self, batch: Any) -> Any:
        """Move a (nested) batch to the XLA device (for batches that bypass ``wrap_loader``)."""
        return move_to_device(batch, self.device)

    def optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """``xm.optimizer_step``: average gradients over replicas (when >1), then ``step()``.

        No barrier: the graph runs at the next ``mark_step`` (or device loader batch).
        """
        if not self.reduce_gradients:
            optimizer.step()
            return
        import torch_xla.core.xla_model as xm

        xm.optimizer_step(optimizer)

    def mark_step(self) -> None:
        """End the step: compile (first time) and launch the pending graph with ``torch_xla.sync()``."""
        import torch_xla

        torch_xla.sync()

    # -- compilation ------------------------------------------------------------------------
    def num_compilations(self) -> int | None:
        """Graph compilations in this process since ``setup()`` (from ``torch_xla.debug.metrics``)."""
        if not torch_xla_installed():
            return None
        return compile_count() - self._compiles_at_setup

    def warn_if_recompiling(self, step: int) -> str | None:
        """Log and return a warning when compilations keep happening after the warm-up steps.

        The first ``recompile_warmup_steps`` steps may compile (training step, first eval, ...).
        After that, a count that grows between two calls means graphs differ from step to step
        (changing shapes, Python scalars baked into the graph, host syncs); every growth is
        reported once. Reads a host-side counter only: no device sync.
        """
        count = self.num_compilations()
        if count is None or step < self.recompile_warmup_steps:
            return None
        if self._compiles_at_warmup is None:
            self._compiles_at_warmup = self._last_warned_count = count
            return None
        if self._last_warned_count is not None and count <= self._last_warned_count:
            return None
        self._last_warned_count = count
        message = (
            f"XLA recompiled at step {step}: {count} compilations so far, "
            f"{count - self._compiles_at_warmup} after warm-up. Keep batch shapes fixed "
            "(drop_last=True), avoid .item()/print of device tensors inside the step, and check "
            "the compile metrics with torch_xla.debug.metrics.metrics_report()"
        )
        log.warning(message)
        return message

    def describe(self) -> str:
        """E.g. ``tpu (xla:0: CPU, 1 of 1 replicas)``."""
        if not torch_xla_installed():
            return f"{self.name} ({self.device}: torch-xla missing)"
        import torch_xla
        import torch_xla.runtime as xr

        if not torch_xla._XLAC._xla_runtime_is_initialized():
            return f"{self.name} ({self.device}: runtime not started)"
        return (f"{self.name} ({self.device}: {xr.device_type()}, "
                f"replica {xr.global_ordinal()} of {xr.world_size()})")
