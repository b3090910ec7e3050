"""Common bases of the classification metric classes."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypedDict

import attrs
import torch
from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import _stats
from declarative_train.metrics.functional.args import (
    ClassificationArgs,
    ClassificationOptions,
    TaskOptions,
)
from declarative_train.metrics.metric import Metric, MetricOptions


class ClassificationMetricOptions(TaskOptions, MetricOptions, total=False):
    """Keyword arguments of :class:`ClassificationMetric` that its subclasses pass on."""

    average: str | None


class _CountSettings(TypedDict, total=False):
    threshold: float
    top_k: int
    zero_division: float


class _PassedOn(_CountSettings, MetricOptions, total=False):
    """Settings that only some subclasses take (passed on by them), and the Metric options."""


_PASSED_ON = _CountSettings.__optional_keys__


class ClassificationMetric(Metric):
    """A metric whose settings are checked once into :attr:`args`, a
    :class:`~declarative_train.metrics.functional.args.ClassificationArgs` (which documents them).

    This class names the settings of every classification metric; a subclass names the ones it
    adds (``threshold``, ``thresholds`` ...) in its own ``__init__``, so that the signature of
    each class lists every accepted name (config validation relies on it). All settings after
    ``task`` are keywords. ``average=None`` takes the class default (``default_average``).
    """

    args: ClassificationArgs
    default_average = "micro"

    @with_base_params(Metric.__init__)
    def __init__(
        self,
        task: str,
        *,
        num_classes: int | None = None,
        num_labels: int | None = None,
        average: str | None = None,
        ignore_index: int | None = None,
        validate_args: bool = True,
        **kwargs: Unpack[_PassedOn],
    ) -> None:
        options: dict[str, Any] = dict(kwargs)
        settings = {name: options.pop(name) for name in _PASSED_ON if name in options}
        super().__init__(**options)
        self.args = ClassificationArgs(
            metric=type(self).__name__,
            task=task,
            num_classes=num_classes,
            num_labels=num_labels,
            average=self.default_average if average is None else average,
            ignore_index=ignore_index,
            validate_args=validate_args,
            **settings,
        )

    @property
    def validate_args(self) -> bool:
        """Whether each update checks its inputs (one host sync per batch).

        Settable: the executor checks the first batch of an evaluation and then turns it off.
        """
        return self.args.validate_args

    @validate_args.setter
    def validate_args(self, value: bool) -> None:
        self.args = attrs.evolve(self.args, validate_args=value)

    def __repr__(self) -> str:
        a = self.args
        n = a.num_classes if a.task == "multiclass" else a.num_labels
        return f"{type(self).__name__}(task={a.task!r}, n={n}, average={a.average!r})"


class CountMetricOptions(ClassificationOptions, MetricOptions, total=False):
    """Keyword arguments of :class:`CountMetric` after ``task`` (for subclasses that forward them)."""


class CountMetric(ClassificationMetric):
    """Accumulates a confusion-count state (see :func:`_stats.update_state`) summed over batches.

    Adds ``threshold``, ``top_k`` and ``zero_division`` to the settings of
    :class:`ClassificationMetric`; the options of :class:`Metric` (``sync_on_compute`` ...)
    follow as keywords.
    """

    confmat: Tensor
    supports_top_k = True

    @with_base_params(ClassificationMetric.__init__)
    def __init__(
        self,
        task: str,
        *,
        threshold: float = 0.5,
        top_k: int = 1,
        zero_division: float = 0.0,
        **kwargs: Unpack[ClassificationMetricOptions],
    ) -> None:
        if top_k != 1 and not self.supports_top_k:
            raise ValueError(f"{type(self).__name__}: argument `top_k` is not supported")
        super().__init__(
            task, threshold=threshold, top_k=top_k, zero_division=zero_division, **kwargs
        )
        shape = _stats.state_shape(self.args)
        self.add_state(
            "confmat", torch.zeros(shape, dtype=torch.long), reduce="sum", persistent=True
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add the counts of one batch of ``preds`` (labels, probabilities or logits) and ``target``."""
        self.confmat += _stats.update_state(self.args, preds, target)

    def compute(self) -> Tensor:
        """The metric over everything accumulated since the last reset."""
        return self._from_state(self.confmat)

    def state_group(self) -> Hashable | None:
        """Count metrics share their counts when the settings that shape them agree (not ``average``)."""
        if type(self).update is not CountMetric.update:  # a subclass that counts its own way
            return None
        a = self.args
        return ("counts", a.task, a.num_outputs, a.threshold, a.top_k, a.ignore_index, str(self.device))

    def _from_state(self, state: Tensor) -> Tensor:
        raise NotImplementedError
