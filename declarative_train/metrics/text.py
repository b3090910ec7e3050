"""Text metrics (classes): perplexity; the maths lives in :mod:`.functional.text`."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.functional import text as F
from declarative_train.metrics.metric import Metric, MetricOptions


class Perplexity(Metric):
    """Perplexity of a language model over all tokens seen: ``exp(summed NLL / token count)``.

    ``update(preds, target)`` takes logits ``[..., V]`` and token ids ``[...]``; tokens whose
    target is ``ignore_index`` are not counted. The sums are float64 and synchronised across
    processes like every metric's states. Lower is better; a model that guesses uniformly over
    ``V`` tokens scores ``V``.

    Example:
        >>> import torch
        >>> ppl = Perplexity()
        >>> ppl.update(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))
        >>> ppl.compute()
        tensor(4.)
    """

    nll_sum: Tensor
    count: Tensor
    higher_is_better = False

    @with_base_params(Metric.__init__)
    def __init__(
        self, ignore_index: int | None = None, validate_args: bool = True, **kwargs: Unpack[MetricOptions]
    ) -> None:
        super().__init__(**kwargs)
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise ValueError(f"Perplexity: argument `ignore_index` must be an int or None, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        self.add_state("nll_sum", torch.tensor(0.0, dtype=torch.float64), reduce="sum", persistent=True)
        self.add_state("count", torch.tensor(0, dtype=torch.long), reduce="sum", persistent=True)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch of logits ``[..., V]`` and token ids ``[...]``."""
        nll, count = F.perplexity_update(preds, target, self.ignore_index, type(self).__name__, self.validate_args)
        self.nll_sum += nll
        self.count += count

    def compute(self) -> Tensor:
        """Perplexity over every token accumulated since the last reset."""
        return F.perplexity_from_sums(self.nll_sum, self.count)
