"""Base classes for metrics written as a plain function of tensors or of numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from declarative_train.metrics import sync as _sync
from declarative_train.metrics.functional._checks import check_choice
from declarative_train.metrics.metric import Metric

REDUCE_OPS = ("sum", "mean", "max", "min")


class TensorMetric(Metric):
    """A metric defined by ``forward(*tensors) -> Tensor``; the result is reduced across processes.

    Calling the metric returns ``forward``'s value reduced over all ranks with ``reduce_op``
    (``sum|mean|max|min``; one all-reduce per call when distributed, nothing otherwise). Every
    call (or ``update``) also records the local value; ``compute()`` reduces all recorded values
    of all calls and ranks with the same op.

    Set ``higher_is_better`` in the subclass when the value has a direction.

    Args:
        name: a display name (default: the class name).
        reduce_op: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.
        reduce_group: process group (default: the world).

    Example:
        >>> import torch
        >>> class MaxError(TensorMetric):
        ...     def forward(self, preds, target):
        ...         return (preds - target).abs().max()
        >>> m = MaxError(reduce_op="max")
        >>> m(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0]))
        tensor(0.5000)
        >>> m.update(torch.tensor([0.0]), torch.tensor([2.0]))
        >>> m.compute()
        tensor(2.)
    """

    values: list[Tensor]
    higher_is_better = None  # a subclass says

    def __init__(
        self,
        name: str | None = None,
        reduce_op: str = "mean",
        reduce_group: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(process_group=reduce_group, **kwargs)
        check_choice(type(self).__name__, "reduce_op", reduce_op, REDUCE_OPS)
        self.name = name or type(self).__name__
        self.reduce_op = reduce_op
        self.add_state("values", [], reduce="cat")

    def _evaluate(self, *args: Any, **kwargs: Any) -> Tensor:
        return torch.as_tensor(super().__call__(*args, **kwargs))

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        value = self._evaluate(*args, **kwargs)
        self._record(value)
        return _sync.reduce_tensor(value, self.reduce_op, self.process_group)

    def _record(self, value: Tensor) -> None:
        self._rt.computed = None
        self._rt.update_count += 1
        self.values.append(value.detach().unsqueeze(0))

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Evaluate ``forward`` on a batch and record the value."""
        self._record(self._evaluate(*args, **kwargs))

    def compute(self) -> Tensor:
        """All recorded values of all calls (and ranks) reduced with ``reduce_op``."""
        if not self.values:
            return torch.tensor(float("nan"))
        stacked = torch.cat(self.values)
        if self.reduce_op == "sum":
            return stacked.sum(0)
        if self.reduce_op == "max":
            return stacked.max(0).values
        if self.reduce_op == "min":
            return stacked.min(0).values
        return (
            stacked.double()
            .mean(0)
            .to(stacked.dtype if stacked.is_floating_point() else torch.float32)
        )


def _to_numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else x


class NumpyMetric(TensorMetric):
    """Like :class:`TensorMetric`, but ``forward`` receives numpy arrays and may return numpy.

    Tensor inputs are converted to numpy; the result becomes a tensor on the device of the first
    tensor input, then is reduced across processes with ``reduce_op``.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> class Median(NumpyMetric):
        ...     def forward(self, x):
        ...         return np.median(x)
        >>> Median()(torch.tensor([3.0, 1.0, 2.0]))
        tensor(2.)
    """

    def _evaluate(self, *args: Any, **kwargs: Any) -> Tensor:
        device = next((a.device for a in args if isinstance(a, Tensor)), self.device)
        np_args = [_to_numpy(a) for a in args]
        np_kwargs = {k: _to_numpy(v) for k, v in kwargs.items()}
        out = torch.nn.Module.__call__(self, *np_args, **np_kwargs)
        return torch.as_tensor(np.asarray(out), device=device)
