"""Wrap any ``sklearn.metrics`` function as a (distributed) metric; scikit-learn is imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from declarative_train.metrics.metric import Metric

_LOWER_IS_BETTER_SUFFIXES = ("_error", "_loss", "_distance", "_deviance")
_HIGHER_IS_BETTER_SUFFIXES = ("_score", "_similarity", "_corrcoef")
# names whose suffix says the opposite of what they mean
_EXCEPTIONS = {"davies_bouldin_score": False}


def infer_higher_is_better(name: str) -> bool | None:
    """The direction of a scikit-learn metric from its name, where the name makes it clear.

    ``*_error``, ``*_loss``, ``*_distance``, ``*_deviance``: ``False``; ``*_score``,
    ``accuracy*``, ``*_similarity``, ``*_corrcoef``: ``True`` (``davies_bouldin_score``
    excepted); anything else (``auc``, ``roc_curve``, ``confusion_matrix`` ...): ``None``.

    Example:
        >>> infer_higher_is_better("mean_squared_error"), infer_higher_is_better("f1_score")
        (False, True)
        >>> print(infer_higher_is_better("roc_curve"))
        None
    """
    if name in _EXCEPTIONS:
        return _EXCEPTIONS[name]
    if name.endswith(_LOWER_IS_BETTER_SUFFIXES):
        return False
    if name.endswith(_HIGHER_IS_BETTER_SUFFIXES) or name.startswith("accuracy"):
        return True
    return None


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
        higher_is_better: the direction of the metric; ``None`` infers it from the function's
            name where that is unambiguous (see :func:`infer_higher_is_better`).
        sync_on_compute / process_group: as for :class:`Metric`.
        kwargs: passed to the scikit-learn function.

    Example:
        >>> import torch
        >>> m = SklearnMetric("balanced_accuracy_score")
        >>> m.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1]))
        >>> m.compute()
        tensor(0.7500)
        >>> m.higher_is_better
        True
    """

    preds: list[Tensor]
    target: list[Tensor]
    higher_is_better = None  # set per instance, from the wrapped function

    def __init__(
        self,
        metric: str | Callable[..., Any],
        preds_transform: Callable[[Tensor], Tensor] | None = None,
        *,
        higher_is_better: bool | None = None,
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
        if higher_is_better is None:
            higher_is_better = infer_higher_is_better(self.metric_name)
        self.higher_is_better = higher_is_better  # per instance: shadows the class attribute
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
