"""The parameters a weight-averaging callback averages, and swapping other weights into them."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class AveragedParameters:
    """The floating-point parameters of a model, each once (tied parameters share one entry).

    ``names[i]`` lists every ``state_dict`` key of ``params[i]``; buffers are not included
    (averaging callbacks leave them to the model). :meth:`swap_in` puts other tensors into the
    parameters (keeping the parameters' values aside) and :meth:`swap_out` puts them back; both
    copy on the device, with no host sync.
    """

    def __init__(self, model: torch.nn.Module) -> None:
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
        self._saved: list[torch.Tensor] | None = None
        self.swapped = False

    def detached(self) -> list[torch.Tensor]:
        """The parameters' tensors (no autograd history)."""
        return [p.detach() for p in self.params]

    def clones(self) -> list[torch.Tensor]:
        """Copies of the parameters, on their device."""
        return [p.detach().clone() for p in self.params]

    def by_name(self, tensors: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``tensors`` (one per parameter) keyed by each parameter's first name."""
        return {names[0]: tensor for names, tensor in zip(self.names, tensors, strict=True)}

    def from_names(self, saved: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Tensors saved by :meth:`by_name`, in parameter order, on each parameter's device and dtype."""
        missing = [names[0] for names in self.names if names[0] not in saved]
        if missing or len(saved) != len(self.names):
            raise ValueError(f"the saved weights are for another model (parameters {sorted(saved)[:5]}, "
                             f"this model {[n[0] for n in self.names][:5]})")
        return [saved[names[0]].to(device=p.device, dtype=p.dtype, copy=True)
                for names, p in zip(self.names, self.params, strict=True)]

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
        torch._foreach_copy_(self.detached(), list(tensors))

    @torch.no_grad()
    def swap_in(self, tensors: Sequence[torch.Tensor]) -> None:
        """Keep the parameters' values aside and put ``tensors`` in their place."""
        if self.swapped:
            return
        if self._saved is None:
            self._saved = [torch.empty_like(p) for p in self.params]  # allocated once, reused
        torch._foreach_copy_(self._saved, self.detached())
        torch._foreach_copy_(self.detached(), list(tensors))
        self.swapped = True

    @torch.no_grad()
    def swap_out(self) -> None:
        """Put back the values :meth:`swap_in` kept aside."""
        if not self.swapped:
            return
        assert self._saved is not None
        torch._foreach_copy_(self.detached(), self._saved)
        self.swapped = False

    def training_values(self) -> list[torch.Tensor]:
        """The parameters' own values: those kept aside while swapped, else the parameters."""
        return list(self._saved) if self.swapped and self._saved is not None else self.detached()
