"""The one walker over nested structures of tensors (batches, state dicts, checkpoints).

Device moves, checkpoint snapshots and XLA-to-CPU transfers all go through :func:`map_tensors`;
size and device questions through :func:`iter_tensors`. Containers keep their type: dicts (and
their attributes, such as a state dict's ``_metadata``), other mappings, lists, tuples,
namedtuples, sets and dataclass instances. Sequences of plain numbers and strings (a Python RNG
state: 625 ints) are not walked item by item.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

_ATOMS = frozenset({int, float, bool, str, bytes, complex, type(None)})


def is_flat(items: Any) -> bool:
    """Whether a sequence holds only numbers, strings and ``None`` (nothing to walk into)."""
    return all(type(item) in _ATOMS for item in items)


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], Any], *, memo: dict[int, Any] | None = None) -> Any:
    """``obj`` with ``fn`` applied to every tensor inside it; everything else is kept as it is.

    With ``memo``, a tensor that appears several times (tied weights) is mapped once and the
    result shared, as in the original.
    """
    if isinstance(obj, torch.Tensor):
        if memo is None:
            return fn(obj)
        if id(obj) not in memo:
            memo[id(obj)] = fn(obj)
        return memo[id(obj)]
    if isinstance(obj, dict):
        out = type(obj)((key, map_tensors(value, fn, memo=memo)) for key, value in obj.items())
        if getattr(obj, "__dict__", None):
            out.__dict__.update(obj.__dict__)
        return out
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(map_tensors(value, fn, memo=memo) for value in obj))
    if isinstance(obj, (list, tuple, set, frozenset)):
        if is_flat(obj):
            return obj if type(obj) in (tuple, frozenset) else type(obj)(obj)
        return type(obj)(map_tensors(value, fn, memo=memo) for value in obj)
    if isinstance(obj, Mapping):
        return type(obj)((key, map_tensors(value, fn, memo=memo)) for key, value in obj.items())  # type: ignore[call-arg]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: map_tensors(getattr(obj, f.name), fn, memo=memo) for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    return obj


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``obj``, depth first (a tensor that appears twice is yielded twice)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from iter_tensors(value)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        if not is_flat(obj):
            for value in obj:
                yield from iter_tensors(value)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from iter_tensors(getattr(obj, field.name))


def tensor_bytes(obj: Any) -> int:
    """Bytes of the distinct tensors inside ``obj``."""
    sizes = {id(t): t.nelement() * t.element_size() for t in iter_tensors(obj)}
    return sum(sizes.values())


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """``batch`` with every tensor inside it moved to ``device`` (containers keep their type)."""
    return map_tensors(batch, lambda t: t.to(device, non_blocking=non_blocking))


#: Top-level config sections that say where a run writes, not what it trains: not hyperparameters.
NOT_HYPERPARAMETERS = ("paths", "hydra", "sweep")


def flatten_config_dict(config: Mapping[Any, Any]) -> dict[str, Any]:
    """A plain (resolved) config flattened to ``a.b.c: value``, as runs log their hyperparameters.

    Leaves out the :data:`NOT_HYPERPARAMETERS` sections and ``_private_`` keys (``_target_``
    included); lists stay values.
    """
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if not (prefix == "" and key in NOT_HYPERPARAMETERS) and not str(key).startswith("_"):
                    walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(config, "")
    return flat
