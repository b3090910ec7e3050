"""Wrap any ``sklearn.metrics`` function as a (distributed) metric; scikit-learn is imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from declarative_train.metrics.metric import Metric


def resolve_sklearn_metric(metric: str | Callable[..., Any]) -> Callable[..., Any]:
    """A function of ``sklearn.metrics`` by name (imports scikit-learn), or the callable itself."""
    if callable(metric):
        return metric
    module = importlib.import_module("sklearn.metrics")
    fn = getattr(module, metric, None)
    if not callable(fn):
        raise ValueError(
            f"SklearnMetric: argument `metric` {metric!r} is not a function of sklearn.metrics"
        )
    return fn


class SklearnMetric(Metric):
    """Collect preds and targets of all batches (and all ranks) and call a scikit-learn metric once.

    ``compute()`` gathers the data of every rank (one round of collectives), converts it to numpy
    and returns ``metric(target, preds, **kwargs)`` as a tensor. Pass what the function expects
    (labels, probabilities ...); ``preds_transform`` (e.g. ``lambda p: p.argmax(1)``) is applied to
    each batch of preds in ``update``.

    Args:
        metric: a name in ``sklearn.metrics`` or any callable ``f(y_true, y_pred, **kwargs)``.
        preds_transform: optional function applied to preds before they are stored.
        sync_on_compute / process_group: as for :class:`Metric`.
        kwargs: passed to the scikit-learn function.

    Example:
        >>> import torch
        >>> m = SklearnMetric("balanced_accuracy_score")
        >>> m.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1]))
        >>> m.compute()
        tensor(0.7500)
    """

    preds: list[Tensor]
    target: list[Tensor]

    def __init__(
        self,
        metric: str | Callable[..., Any],
        preds_transform: Callable[[Tensor], Tensor] | None = None,
        *,
        sync_on_compute: bool = True,
        process_group: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(sync_on_compute=sync_on_compute, process_group=process_group)
        self.fn = resolve_sklearn_metric(metric)
        self.metric_name = (
            metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
        )
        self.preds_transform = preds_transform
        self.kwargs = kwargs
        self.add_state("preds", [], reduce="cat")
        self.add_state("target", [], reduce="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Store a batch."""
        if self.preds_transform is not None:
            preds = self.preds_transform(preds)
        self.preds.append(preds.detach())
        self.target.append(target.detach())

    def compute(self) -> Tensor:
        """``metric(all targets, all preds, **kwargs)`` as a tensor."""
        if not self.preds:
            raise ValueError(
                f"SklearnMetric({self.metric_name!r}): compute() called without any data"
            )
        preds = torch.cat(self.preds).cpu().numpy()
        target = torch.cat(self.target).cpu().numpy()
        out = np.asarray(self.fn(target, preds, **self.kwargs))
        result = torch.as_tensor(out, device=self.device)
        return result.to(torch.get_default_dtype()) if result.is_floating_point() else result

    def __repr__(self) -> str:
        return f"SklearnMetric({self.metric_name!r})"
