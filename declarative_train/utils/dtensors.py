"""Telling FSDP2's sharded tensors (DTensors) apart without importing ``torch.distributed.tensor``.

Importing it takes about half a second; a DTensor can only exist once something (FSDP) has
imported it, so until then every tensor is a plain one.
"""

from __future__ import annotations

import sys
from typing import Any

import torch


def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor``."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(tensor, module.DTensor)


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (sharing its memory); any other tensor as it is."""
    return tensor.to_local() if is_dtensor(tensor) else tensor  # type: ignore[attr-defined]
