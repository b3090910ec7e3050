"""FSDP2: parameters, gradients and optimizer state sharded across ranks with ``fully_shard``.

The process group, samplers, collectives and per-rank reseeding are DDP's
(:class:`~declarative_train.distributed.ddp.DDPDistribution`); what differs is how the task is
wrapped, how accumulation skips gradient syncs, and how model and optimizer state are taken
for a checkpoint (gathered from every rank into full, unsharded state dicts).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
    register_fsdp_forward_method,
)
from torch.distributed.tensor import DTensor

from declarative_train.distributed.ddp import DDPDistribution, _seed_all
from declarative_train.distributed.env import ProcessEnv
from declarative_train.distributed.optimizer_layout import by_index, by_name, is_name_keyed
from declarative_train.distributed.plan import STATE_DICT_TYPES
from declarative_train.errors import ArgumentError, ConfigError, ConfigIssue
from declarative_train.utils.text import did_you_mean

log = logging.getLogger(__name__)

#: Task methods that run the model: each unshards the root's parameters like ``forward`` does.
STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")
#: Parameter dtypes FSDP2 computes in for each mixed precision mode (gradients reduced in float32).
MIXED_PARAM_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
_SCATTER = StateDictOptions(full_state_dict=True)
_FROM_RANK0 = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)


class FSDPDistribution(DDPDistribution):
    """This process as one rank of an FSDP2 job.

    ``wrap_training_step`` applies ``fully_shard`` to every submodule whose class name is in
    ``wrap`` (innermost first), then to the task itself, over a 1-D mesh of all ranks, or a 2-D
    ``(replicate, world_size / replicate)`` mesh for HSDP. With ``wrap=None`` the units are the
    repeated blocks: the classes of modules that some ``nn.ModuleList`` holds at least twice
    (transformer layers, residual blocks); a model without such a list is one unit (the task).

    Args:
        process: this process's ranks and the job size.
        wrap: class names of the submodules sharded as units (``None``: the repeated blocks).
        reshard_after_forward: free gathered parameters after forward (gather again for backward).
        cpu_offload: keep sharded parameters, gradients and optimizer state in CPU memory.
        replicate: HSDP replica groups; must divide the world size (1: plain FSDP).
        state_dict_type: ``sharded`` (default): checkpoints are folders of every rank's shards
            (``checkpoint.sharded``); ``full``: single files of the gathered state written by rank 0.
        rank0_init: the task was built with its weights on rank 0 only, on the meta device on the
            other ranks (``build.build_task``): after sharding, the other ranks allocate their shards
            and rank 0 sends every rank its part of the weights and the buffers.
        precision: the run's precision mode; ``bf16-mixed`` computes in bfloat16 and ``16-mixed``
            in float16 (with the run's GradScaler, whose inf checks FSDP2 reduces over ranks),
            both reducing gradients in float32. Other modes keep the parameters' dtype.
        backend / timeout_s / seed: as for DDP.
    """

    def __init__(
        self, process: ProcessEnv, *, wrap: Sequence[str] | None = None, reshard_after_forward: bool = True,
        cpu_offload: bool = False, replicate: int = 1, precision: str = "32", state_dict_type: str = "sharded",
        rank0_init: bool = False,
        backend: str | None = None, timeout_s: int = 600, seed: int | None = 0,
    ) -> None:
        super().__init__(process, backend=backend, timeout_s=timeout_s, seed=seed)
        if replicate < 1 or process.world_size % replicate:
            raise ArgumentError("FSDPDistribution", "replicate", f"= {replicate} does not divide the world size {process.world_size}")
        if state_dict_type not in STATE_DICT_TYPES:
            raise ArgumentError("FSDPDistribution", "state_dict_type", f"must be one of {', '.join(STATE_DICT_TYPES)}, "
                                                                     f"got {state_dict_type!r}")
        self.state_dict_type = state_dict_type
        self.shards_checkpoints = state_dict_type == "sharded"
        self.wrap = list(wrap) if wrap is not None else None
        self.reshard_after_forward = reshard_after_forward
        self.cpu_offload = cpu_offload
        self.replicate = replicate
        self.precision = precision
        self.rank0_init = rank0_init
        self.places_model = True  # fully_shard moves each unit's states to the mesh's device
        self._root: nn.Module | None = None

    # ---------------------------------------------------------------- model
    def mesh(self) -> DeviceMesh:
        """The device mesh: all ranks, or ``(replicate, shard)`` for HSDP."""
        if self.replicate == 1:
            return init_device_mesh(self.device.type, (self.world_size,))
        return init_device_mesh(self.device.type, (self.replicate, self.world_size // self.replicate),
                                mesh_dim_names=("replicate", "shard"))

    def wrap_training_step(self, task: nn.Module) -> Callable[[Any, int], torch.Tensor]:
        """Shard ``task`` in place (units first, the task last) and return its training step.

        The task's step methods are registered as forward methods, so each unshards the root's
        parameters as ``forward`` would. Raises :class:`ConfigError` on ``accelerator.fsdp.wrap``
        when a named class is not in the model.
        """
        issue = wrap_issue(task, self.wrap)
        if issue is not None:
            raise ConfigError([issue])
        options: dict[str, Any] = {"mesh": self.mesh(), "reshard_after_forward": self.reshard_after_forward,
                                   "offload_policy": CPUOffloadPolicy(pin_memory=self.device.type == "cuda")
                                   if self.cpu_offload else OffloadPolicy()}
        param_dtype = MIXED_PARAM_DTYPES.get(self.precision)
        if param_dtype is not None:
            options["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
        units = wrap_units(task, self.wrap)
        unit_classes = ", ".join(sorted({type(u).__name__ for u in units})) or "none"  # before fully_shard renames them
        # Rank 0's whole weights, kept (not copied) until they are sent: fully_shard keeps only shards.
        whole = task.state_dict() if self.rank0_init and self.rank == 0 else {}
        for unit in units:
            fully_shard(unit, **options)
        fully_shard(task, **options)
        if self.rank0_init:
            self._receive_weights(task, whole)
            del whole
        for method in STEP_METHODS:
            if callable(getattr(task, method, None)):
                register_fsdp_forward_method(task, method)
        self._root = task
        log.info("FSDP: %d units (%s) and the task, mesh %s", len(units), unit_classes, tuple(options["mesh"].shape))
        if self.seed is not None:
            _seed_all(self.seed + self.rank)
        return task.training_step  # type: ignore[return-value]

    def _receive_weights(self, task: nn.Module, whole: dict[str, Any]) -> None:
        """Give every rank its shards of rank 0's weights and rank 0's buffers (rank-0 init).

        The ranks that built the task on the meta device allocate it first: the shards where
        FSDP keeps them (the CPU under ``cpu_offload``), the buffers on the device.
        """
        if any(tensor.is_meta for tensor in itertools.chain(task.parameters(), task.buffers())):
            task.to_empty(device=torch.device("cpu") if self.cpu_offload else self.device)
            if self.cpu_offload:
                for module in task.modules():
                    for name, buffer in module.named_buffers(recurse=False):
                        setattr(module, name, buffer.to(self.device))
        set_model_state_dict(task, whole, options=_FROM_RANK0)
        for buffer in task.buffers():  # those outside the state dict too (persistent=False)
            torch.distributed.broadcast(buffer, src=0)
        log.info("FSDP: rank 0's weights sent to every rank's shards")

    def no_sync(self, model_step: Any) -> contextlib.AbstractContextManager[Any]:
        """Keep micro-batch gradients unreduced until the accumulation boundary (no reduce-scatter)."""
        return _gradient_sync_off(self._root) if isinstance(self._root, FSDPModule) else contextlib.nullcontext()

    # ---------------------------------------------------------------- checkpoint state
    def model_state_dict(self, model: nn.Module) -> dict[str, Any]:
        """Sharded: this rank's shards (DTensors). Full: the whole weights on rank 0's CPU, an empty
        dict on the other ranks. A collective either way."""
        if self.shards_checkpoints:
            return get_model_state_dict(model)
        return get_model_state_dict(model, options=_GATHER)

    def load_model_state_dict(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Load this rank's shards (DTensors, from a sharded folder) or full weights (every rank holds them)."""
        sharded = any(isinstance(value, DTensor) for value in state.values())
        set_model_state_dict(model, state, options=None if sharded else _SCATTER)

    def optimizer_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Sharded: this rank's shards of the state, keyed by parameter name (DCP's layout). Full: the
        whole state in ``optimizer.state_dict()``'s layout (integer ids) on rank 0, an empty dict on
        the other ranks. A collective either way."""
        if self.shards_checkpoints:
            return get_optimizer_state_dict(model, optimizer)
        full = get_optimizer_state_dict(model, optimizer, options=_GATHER)
        return by_index(full, _parameter_names(model, optimizer)) if full else {}

    def load_optimizer_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                                  state: dict[str, Any]) -> None:
        """Load this rank's shards (name-keyed, from a sharded folder) or a full state in
        ``optimizer.state_dict()``'s layout."""
        if is_name_keyed(state):
            set_optimizer_state_dict(model, optimizer, state)
            return
        set_optimizer_state_dict(model, optimizer, by_name(state, _parameter_names(model, optimizer)), options=_SCATTER)


@contextlib.contextmanager
def _gradient_sync_off(root: FSDPModule) -> Iterator[None]:
    root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


def repeated_block_classes(model: nn.Module) -> list[str]:
    """Class names of modules that an ``nn.ModuleList`` of ``model`` holds at least twice."""
    found: set[str] = set()
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            counts = Counter(type(child).__name__ for child in module)
            found.update(name for name, count in counts.items() if count >= 2)
    return sorted(found)


def wrap_units(model: nn.Module, wrap: Sequence[str] | None) -> list[nn.Module]:
    """The submodules (not ``model`` itself) sharded as units, innermost first."""
    names = set(repeated_block_classes(model) if wrap is None else wrap)
    return [m for _, m in reversed(list(model.named_modules())) if m is not model and type(m).__name__ in names]


def wrap_issue(model: nn.Module, wrap: Sequence[str] | None) -> ConfigIssue | None:
    """An issue on ``accelerator.fsdp.wrap`` for class names no submodule of ``model`` has."""
    if not wrap:
        return None
    own = sorted({type(m).__name__ for m in model.modules() if m is not model})
    unknown = [name for name in wrap if name not in own]
    if not unknown:
        return None
    named = " ".join(f"no submodule of the model is a {name!r}.{did_you_mean(name, own)}" for name in unknown)
    return ConfigIssue("accelerator.fsdp.wrap", f"{named} The model's module classes: {', '.join(own)}")


def _parameter_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The fully qualified name of each optimizer parameter, in ``optimizer.state_dict()``'s id order."""
    names = {id(param): name for name, param in model.named_parameters()}
    return [names[id(param)] for group in optimizer.param_groups for param in group["params"]]
