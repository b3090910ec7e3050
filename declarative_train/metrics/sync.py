"""Synchronise metric states across processes with as few collectives as possible.

All tensor states of any number of metrics are synchronised together:

* one ``all_reduce`` per (reduction kind, dtype) bucket; same-dtype states are flattened and
  concatenated into one buffer first. ``mean`` states are summed and divided by the world size.
* the per-rank sizes, dtypes and shapes of the ``cat`` states are packed into the ``int64`` sum
  bucket (each rank fills its own row of a zero matrix), so they travel in the same round.
* one padded ``all_gather`` of a byte buffer holding every ``cat`` state of every metric, whatever
  their dtypes. Ranks with empty ``cat`` states (or no samples at all) take part with zero bytes.
* states with a custom (callable) reduction are all-gathered one by one and reduced by the callable.

Only the generic ``torch.distributed.all_reduce`` / ``all_gather`` are used, so gloo, nccl and
XLA's backend all work. :data:`COUNTER` counts the collectives issued by this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

StateValue = Tensor | list[Tensor]
Reduction = str | Callable[[Tensor], Tensor] | None

_MAX_NDIM = 8
_META = 3 + _MAX_NDIM  # nbytes, dtype code, ndim, shape...
_ALIGN = 16
_DTYPES: tuple[torch.dtype, ...] = (
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
    torch.complex128,
)
_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN"}


class CollectiveCounter:
    """Counts the collectives issued by :func:`sync_states` (and :func:`reduce_tensor`)."""

    def __init__(self) -> None:
        self.all_reduce = 0
        self.all_gather = 0

    @property
    def total(self) -> int:
        """Number of collectives of any kind issued since the last :meth:`reset`."""
        return self.all_reduce + self.all_gather

    def reset(self) -> None:
        """Set all counts back to zero."""
        self.all_reduce = 0
        self.all_gather = 0


COUNTER = CollectiveCounter()


def distributed_available() -> bool:
    """Whether ``torch.distributed`` is available and a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def _all_reduce(tensor: Tensor, kind: str, group: Any) -> Tensor:
    COUNTER.all_reduce += 1
    dist.all_reduce(tensor, op=getattr(dist.ReduceOp, _OPS[kind]), group=group)
    return tensor


def _all_gather(tensor: Tensor, group: Any) -> list[Tensor]:
    COUNTER.all_gather += 1
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, tensor.contiguous(), group=group)
    return out


def reduce_tensor(tensor: Tensor, op: str = "sum", group: Any = None) -> Tensor:
    """All-reduce one tensor with ``op`` in ``sum|mean|max|min``; identity when not distributed."""
    if not distributed_available():
        return tensor
    out = _all_reduce(tensor.clone(), op, group)
    return out / dist.get_world_size(group) if op == "mean" else out


def local_cat(value: StateValue) -> Tensor | None:
    """Concatenate a ``cat`` state along dim 0; ``None`` for an empty list."""
    if isinstance(value, Tensor):
        return value.reshape(1) if value.ndim == 0 else value
    if not value:
        return None
    parts = [v.reshape(1) if v.ndim == 0 else v for v in value]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def _ceil(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _meta_row(t: Tensor | None) -> list[int]:
    row = [0] * _META
    if t is None:
        row[1] = -1
        return row
    if t.ndim > _MAX_NDIM:
        raise ValueError(f"cat states may have at most {_MAX_NDIM} dims, got {t.ndim}")
    row[0] = t.numel() * t.element_size()
    row[1] = _DTYPES.index(t.dtype)
    row[2] = t.ndim
    row[3 : 3 + t.ndim] = list(t.shape)
    return row


class _Plan:
    """Where each state of each metric goes during one synchronisation."""

    def __init__(self, entries: Sequence[tuple[dict[str, StateValue], dict[str, Reduction]]]):
        self.buckets: dict[tuple[str, torch.dtype], list[tuple[int, str, Tensor]]] = {}
        self.cats: list[tuple[int, str, Tensor | None]] = []
        self.custom: list[tuple[int, str, Tensor, Callable[[Tensor], Tensor]]] = []
        self.results: list[dict[str, StateValue]] = [{} for _ in entries]
        for i, (states, reductions) in enumerate(entries):
            for name, value in states.items():
                red = reductions[name]
                if red == "cat":
                    self.cats.append((i, name, local_cat(value)))
                elif callable(red):
                    self.custom.append((i, name, _as_tensor(value), red))
                elif red is None:
                    self.results[i][name] = value
                else:
                    t = _as_tensor(value)
                    self.buckets.setdefault((str(red), t.dtype), []).append((i, name, t))


def _as_tensor(value: StateValue) -> Tensor:
    if isinstance(value, Tensor):
        return value
    out = local_cat(value)
    if out is None:
        raise ValueError("an empty list state needs reduction 'cat'")
    return out


def _run_buckets(plan: _Plan, meta: Tensor | None, group: Any, world: int) -> Tensor | None:
    """All-reduce every bucket; the cat meta table rides along in the int64 sum bucket."""
    if meta is not None:
        plan.buckets.setdefault(("sum", torch.int64), [])
    for (kind, dtype), items in plan.buckets.items():
        flat = [t.reshape(-1) for _, _, t in items]
        with_meta = meta is not None and kind == "sum" and dtype == torch.int64
        if with_meta:
            assert meta is not None
            flat.append(meta.reshape(-1))
        buf = _all_reduce(torch.cat(flat) if len(flat) > 1 else flat[0].clone(), kind, group)
        if kind == "mean":
            buf = buf / world
        offset = 0
        for i, name, t in items:
            plan.results[i][name] = buf[offset : offset + t.numel()].reshape(t.shape)
            offset += t.numel()
        if with_meta:
            meta = buf[offset:].reshape(meta.shape)  # type: ignore[union-attr]
    return meta


def _run_cats(plan: _Plan, meta: Tensor, group: Any, device: torch.device) -> None:
    """One padded all-gather of all cat states as bytes, then unpack per rank and state."""
    table = meta.tolist()  # [rank][state][field]
    padded = [[_ceil(row[0]) for row in rank_rows] for rank_rows in table]
    longest = max(sum(p) for p in padded)
    collected: list[list[Tensor]] = [[] for _ in plan.cats]
    if longest > 0:
        local = torch.zeros(longest, dtype=torch.uint8, device=device)
        offset = 0
        for _, _, t in plan.cats:
            if t is not None and t.numel():
                raw = t.contiguous().reshape(-1).view(torch.uint8)
                local[offset : offset + raw.numel()] = raw
                offset += _ceil(raw.numel())
        gathered = _all_gather(local, group)
        for rank, rank_rows in enumerate(table):
            offset = 0
            for j, row in enumerate(rank_rows):
                if row[1] >= 0:
                    chunk = gathered[rank][offset : offset + row[0]]
                    shape = row[3 : 3 + row[2]]
                    collected[j].append(chunk.view(_DTYPES[row[1]]).reshape(shape))
                offset += padded[rank][j]
    for j, (i, name, _) in enumerate(plan.cats):
        parts = [p for p in collected[j] if p.numel()] or collected[j][:1]
        plan.results[i][name] = [torch.cat(parts)] if parts else []


def sync_states(
    entries: Sequence[tuple[dict[str, StateValue], dict[str, Reduction]]],
    group: Any = None,
    device: torch.device | None = None,
) -> list[dict[str, StateValue]]:
    """Synchronise the states of several metrics in one round of collectives.

    ``entries`` holds, per metric, its ``{name: value}`` states and ``{name: reduction}``. Returns
    per metric the synchronised ``{name: value}``; ``cat`` states come back as one-element lists
    (or empty lists when no rank has data). Every rank must call this with the same metrics.
    """
    plan = _Plan(entries)
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    if device is None:
        device = _first_device(entries)
    meta = None
    if plan.cats:
        meta = torch.zeros(world, len(plan.cats), _META, dtype=torch.int64, device=device)
        rows = [_meta_row(t) for _, _, t in plan.cats]
        meta[rank] = torch.tensor(rows, dtype=torch.int64, device=device)
    meta = _run_buckets(plan, meta, group, world)
    if meta is not None:
        _run_cats(plan, meta, group, device)
    for i, name, t, fn in plan.custom:
        plan.results[i][name] = fn(torch.stack(_all_gather(t, group)))
    return plan.results


def _first_device(
    entries: Sequence[tuple[dict[str, StateValue], dict[str, Reduction]]],
) -> torch.device:
    for states, _ in entries:
        for value in states.values():
            if isinstance(value, Tensor):
                return value.device
            if value:
                return value[0].device
    return torch.device("cpu")
