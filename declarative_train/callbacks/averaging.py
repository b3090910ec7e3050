"""The parameters a weight-averaging callback averages, and swapping other weights into them.

Under FSDP2 (``strategy=fsdp``) the parameters are DTensors sharded over the ranks: an average
then holds this rank's local shards, updated and swapped with the same foreach ops on local
tensors, and goes into checkpoints as DTensors of the parameters' placement (sharded folders) or
gathered whole (single files).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from declarative_train.utils.dtensors import is_dtensor, local_tensor


class AveragedParameters:
    """The floating-point parameters of a model, each once (tied parameters share one entry).

    ``names[i]`` lists every ``state_dict`` key of ``params[i]``; buffers are not included
    (averaging callbacks leave them to the model). :meth:`swap_in` puts other tensors into the
    parameters (keeping the parameters' values aside) and :meth:`swap_out` puts them back; both
    copy on the device, with no host sync. Every tensor list this class takes or returns holds
    one tensor per parameter: the parameter itself, or for a sharded (DTensor) parameter this
    rank's local shard.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self._fsdp_modules = _fsdp_modules(model)
        self._reshard()  # a root sharded with fully_shard's defaults holds gathered parameters after a forward
        by_id: dict[int, int] = {}
        self.params: list[torch.nn.Parameter] = []
        self.names: list[list[str]] = []
        for name, param in model.named_parameters(remove_duplicate=False):
            if not param.is_floating_point():
                continue
            index = by_id.setdefault(id(param), len(self.params))
            if index == len(self.params):
                self.params.append(param)
                self.names.append([])
            self.names[index].append(name)
        #: Whether the parameters are sharded DTensors (FSDP2): averages then hold local shards.
        self.sharded = any(is_dtensor(p) for p in self.params)
        self._saved: list[torch.Tensor] | None = None
        self.swapped = False

    def detached(self) -> list[torch.Tensor]:
        """The parameters' tensors (no autograd history); a sharded parameter's local shard."""
        return [local_tensor(p.detach()) for p in self.params]

    def clones(self) -> list[torch.Tensor]:
        """Copies of the parameters (local shards), on their device."""
        return [t.clone() for t in self.detached()]

    def by_name(self, tensors: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``tensors`` (one per parameter) keyed by each parameter's first name."""
        return {names[0]: tensor for names, tensor in zip(self.names, tensors, strict=True)}

    def for_checkpoint(self, tensors: Sequence[torch.Tensor], *, whole: bool) -> list[torch.Tensor]:
        """``tensors`` as a checkpoint stores them: as they are, unless the parameters are sharded;
        then DTensors of the parameters' placements (sharing the shards' memory), or with ``whole``
        the full tensors on the CPU (gathered from every rank: a collective, every rank calls it)."""
        if not self.sharded:
            return list(tensors)
        from torch.distributed.tensor import DTensor  # loaded already: the parameters are DTensors

        out: list[torch.Tensor] = []
        for local, param in zip(tensors, self.params, strict=True):
            if not isinstance(param, DTensor):
                out.append(local)
                continue
            shard = DTensor.from_local(local, param.device_mesh, param.placements, run_check=False,
                                       shape=param.shape, stride=param.stride())
            out.append(shard.full_tensor().cpu() if whole else shard)
        return out

    def from_names(self, saved: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Tensors saved by :meth:`by_name`, in parameter order, on each parameter's device and dtype.

        For a sharded parameter the saved tensor may be whole (this rank's shard is cut out of
        it, without communication) or a DTensor of the parameter's placement.
        """
        missing = [names[0] for names in self.names if names[0] not in saved]
        if missing or len(saved) != len(self.names):
            raise ValueError(f"the saved weights are for another model (parameters {sorted(saved)[:5]}, "
                             f"this model {[n[0] for n in self.names][:5]})")
        shapes = [f"{names[0]}: saved {tuple(saved[names[0]].shape)} vs {tuple(p.shape)}"
                  for names, p in zip(self.names, self.params, strict=True) if saved[names[0]].shape != p.shape]
        if shapes:
            raise ValueError(f"the saved weights do not fit the model: {', '.join(shapes[:5])}")
        return [_local_copy(saved[names[0]], p) for names, p in zip(self.names, self.params, strict=True)]

    def replace_in(self, weights: dict[str, torch.Tensor], tensors: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """A copy of the ``state_dict`` ``weights`` with ``tensors`` under every parameter's names."""
        out = dict(weights)
        for names, tensor in zip(self.names, tensors, strict=True):
            for name in names:
                if name in out:
                    out[name] = tensor
        return out

    @torch.no_grad()
    def copy_from(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite the parameters with ``tensors``."""
        self._reshard()
        torch._foreach_copy_(self.detached(), list(tensors))

    @torch.no_grad()
    def swap_in(self, tensors: Sequence[torch.Tensor]) -> None:
        """Keep the parameters' values aside and put ``tensors`` in their place."""
        if self.swapped:
            return
        self._reshard()
        live = self.detached()
        if self._saved is None:
            self._saved = [torch.empty_like(t) for t in live]  # allocated once, reused
        torch._foreach_copy_(self._saved, live)
        torch._foreach_copy_(live, list(tensors))
        self.swapped = True

    @torch.no_grad()
    def swap_out(self) -> None:
        """Put back the values :meth:`swap_in` kept aside."""
        if not self.swapped:
            return
        assert self._saved is not None
        self._reshard()
        torch._foreach_copy_(self.detached(), self._saved)
        self.swapped = False

    def training_values(self) -> list[torch.Tensor]:
        """The parameters' own values: those kept aside while swapped, else the parameters."""
        return list(self._saved) if self.swapped and self._saved is not None else self.detached()

    def _reshard(self) -> None:
        # Values written into the shards reach the next forward only if it gathers them again: a
        # module still holding gathered parameters (fully_shard's default for the root keeps them
        # after a forward) would run with the old ones. A no-op on modules already sharded.
        for module in self._fsdp_modules:
            module.reshard()


def _fsdp_modules(model: torch.nn.Module) -> list[Any]:
    """The FSDP2-sharded modules of ``model`` (none unless ``strategy=fsdp`` loaded FSDP)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")  # not imported here: it takes long, and only FSDP needs it
    return [] if fsdp is None else [m for m in model.modules() if isinstance(m, fsdp.FSDPModule)]


def _local_copy(saved: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A copy of ``saved`` as :meth:`AveragedParameters.detached` holds ``param``: its shard, if sharded."""
    if is_dtensor(param) and not is_dtensor(saved):
        from torch.distributed.tensor import distribute_tensor

        mesh, placements = param.device_mesh, param.placements  # type: ignore[attr-defined]
        saved = distribute_tensor(saved.to(param.dtype), mesh, placements, src_data_rank=None)  # no communication
    local = local_tensor(param.detach())
    return local_tensor(saved).to(device=local.device, dtype=local.dtype, copy=True)
