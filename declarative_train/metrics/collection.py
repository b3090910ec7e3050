""":class:`MetricCollection`: several metrics updated, synchronised and computed together."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, cast

from torch import Tensor, nn

from declarative_train.metrics import sync as _sync
from declarative_train.metrics.metric import Metric


def _accepted_kwargs(metric: Metric) -> set[str] | None:
    """Names of the keyword arguments ``metric.update`` takes (``None``: it takes ``**kwargs``)."""
    params = inspect.signature(metric.update).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


class MetricCollection(nn.Module):
    """A dict of metrics that are updated with the same inputs and computed together.

    ``compute()`` returns ``{prefix + name + postfix: value}``. In a distributed run, the states
    of all members are synchronised in one round of collectives (see :mod:`.sync`). Keyword
    arguments given to ``update`` reach only the members whose ``update`` accepts them. A
    member's direction is ``coll[key].higher_is_better`` (by result key or member name).

    Args:
        metrics: a dict ``{name: metric}`` or a list of metrics (named after their class).
        prefix: prepended to every key of the results.
        postfix: appended to every key of the results.

    Example:
        >>> import torch
        >>> from declarative_train.metrics import Accuracy, MetricCollection
        >>> coll = MetricCollection({"acc": Accuracy(task="multiclass", num_classes=3)}, prefix="val/")
        >>> coll.update(torch.tensor([[2.0, 0.1, 0.3], [0.1, 3.0, 0.2]]), torch.tensor([0, 2]))
        >>> coll.compute()
        {'val/acc': tensor(0.5000)}
        >>> coll["val/acc"].higher_is_better
        True
        >>> coll.reset()
    """

    def __init__(
        self,
        metrics: dict[str, Metric] | Sequence[Metric] | Metric,
        prefix: str = "",
        postfix: str = "",
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.postfix = postfix
        self._metrics = nn.ModuleDict()
        self._kwargs: dict[str, set[str] | None] = {}
        self.add_metrics(metrics)

    def add_metrics(self, metrics: dict[str, Metric] | Sequence[Metric] | Metric) -> None:
        """Add members; a list (or a single metric) is keyed by class name."""
        if isinstance(metrics, Metric):
            metrics = [metrics]
        if not isinstance(metrics, dict):
            named: dict[str, Metric] = {}
            for m in metrics:
                name = type(m).__name__
                if name in named:
                    raise ValueError(f"MetricCollection: two metrics named {name!r}; pass a dict")
                named[name] = m
            metrics = named
        for name, metric in metrics.items():
            if not isinstance(metric, Metric):
                raise ValueError(
                    f"MetricCollection: argument `metrics[{name!r}]` must be a Metric, "
                    f"got {type(metric).__name__}"
                )
            if name in self._metrics:
                raise ValueError(f"MetricCollection: duplicate metric name {name!r}")
            self._metrics[name] = metric
            self._kwargs[name] = _accepted_kwargs(metric)

    def _members(self) -> dict[str, Metric]:
        return cast(dict[str, Metric], dict(self._metrics.items()))

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}{self.postfix}"

    def _kw(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        accepted = self._kwargs[name]
        if accepted is None or not kwargs:
            return kwargs
        return {k: v for k, v in kwargs.items() if k in accepted}

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Update every member with the same inputs.

        Members with the same :meth:`~Metric.state_group` (accuracy and F1 over the same counts)
        are updated once: the others copy the states of the first. So update members only through
        the collection, or not at all.
        """
        updated: dict[Hashable, Metric] = {}
        for name, metric in self._members().items():
            group = metric.state_group()
            first = updated.get(group) if group is not None else None
            if first is not None:
                metric._copy_states_from(first)
                continue
            metric.update(*args, **self._kw(name, kwargs))
            if group is not None:
                updated[group] = metric

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Update every member and return the values on this batch alone."""
        return {
            self._key(name): metric(*args, **self._kw(name, kwargs))
            for name, metric in self._members().items()
        }

    def compute(self) -> dict[str, Any]:
        """Synchronise all members in one round (when distributed) and compute each."""
        with self.sync_context():
            return {self._key(name): m.compute() for name, m in self._members().items()}

    def reset(self) -> None:
        """Reset every member."""
        for metric in self._members().values():
            metric.reset()

    # ---------------------------------------------------------------- sync
    def _to_sync(self) -> list[Metric]:
        return [m for m in self._members().values() if m.sync_on_compute and not m._rt.synced]

    def sync(self, process_group: Any = None) -> list[Metric]:
        """Synchronise the members (grouped by process group); returns the ones synced."""
        members = self._to_sync()
        if not members or not _sync.distributed_available():
            return []
        groups: dict[int, list[Metric]] = {}
        for m in members:
            g = process_group if process_group is not None else m.process_group
            groups.setdefault(id(g), []).append(m)
        for group_members in groups.values():
            g = process_group if process_group is not None else group_members[0].process_group
            entries = [m._sync_entry() for m in group_members]
            states = _sync.sync_states(entries, g, group_members[0].device)
            for m, s in zip(group_members, states):
                m._enter_synced(s)
        return members

    def unsync(self) -> None:
        """Restore the local states of the members synced by :meth:`sync`."""
        for metric in self._members().values():
            if metric._rt.synced:
                metric.unsync()

    def sync_context(self, process_group: Any = None) -> _CollectionSync:
        """Context in which all members hold the states of all ranks combined."""
        return _CollectionSync(self, process_group)

    # ---------------------------------------------------------------- dict-like
    def clone(self, prefix: str | None = None, postfix: str | None = None) -> MetricCollection:
        """Deep copy, optionally with a new prefix/postfix."""
        out = copy.deepcopy(self)
        if prefix is not None:
            out.prefix = prefix
        if postfix is not None:
            out.postfix = postfix
        return out

    def keys(self, keep_base: bool = False) -> list[str]:
        """Result keys (with prefix/postfix unless ``keep_base``)."""
        return [n if keep_base else self._key(n) for n in self._metrics]

    def items(self, keep_base: bool = False) -> list[tuple[str, Metric]]:
        """``(key, metric)`` pairs (keys with prefix/postfix unless ``keep_base``)."""
        return [(n if keep_base else self._key(n), m) for n, m in self._members().items()]

    def values(self) -> list[Metric]:
        """The member metrics."""
        return list(self._members().values())

    def __getitem__(self, key: str) -> Metric:
        members = self._members()
        if key in members:
            return members[key]
        for name, metric in self._members().items():
            if self._key(name) == key:
                return metric
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._metrics or key in self.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._metrics)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}: {m!r}" for n, m in self._members().items())
        return f"MetricCollection({{{inner}}}, prefix={self.prefix!r}, postfix={self.postfix!r})"


class _CollectionSync:
    def __init__(self, coll: MetricCollection, process_group: Any) -> None:
        self.coll = coll
        self.group = process_group
        self.synced: list[Metric] = []

    def __enter__(self) -> None:
        self.synced = self.coll.sync(self.group)

    def __exit__(self, *exc: Any) -> None:
        for m in self.synced:
            if m._rt.synced:
                m.unsync()


__all__ = ["MetricCollection", "Tensor"]
