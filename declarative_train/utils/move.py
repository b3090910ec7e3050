"""Move nested batches (tensors inside tuples, lists, dicts, dataclasses, namedtuples) to a device."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Return ``batch`` with every tensor inside it moved to ``device``.

    Containers keep their type: tuples, lists, dicts (any Mapping that can be rebuilt from
    items), namedtuples and dataclass instances. Anything else is returned unchanged.
    """
    return map_tensors(batch, lambda t: t.to(device, non_blocking=non_blocking))


def map_tensors(batch: Any, fn: Any) -> Any:
    """Return ``batch`` with ``fn`` applied to every tensor inside it (containers keep their type)."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(map_tensors(v, fn) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_tensors(v, fn) for v in batch)
    if isinstance(batch, Mapping):
        return type(batch)((k, map_tensors(v, fn)) for k, v in batch.items())  # type: ignore[call-arg]
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: map_tensors(getattr(batch, f.name), fn) for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    return batch
