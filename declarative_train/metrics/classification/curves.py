"""AUROC, average precision, ROC and precision-recall curves (exact or binned)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from declarative_train.metrics._signature import with_base_params
from declarative_train.metrics._typing import Unpack
from declarative_train.metrics.classification._base import (
    ClassificationMetric,
    ClassificationMetricOptions,
)
from declarative_train.metrics.functional import _curve_core as core
from declarative_train.metrics.functional import curves as F


class _CurveMetric(ClassificationMetric):
    """Keeps every score (exact) or, with ``thresholds``, a fixed-size histogram per class.

    Adds ``thresholds`` to the settings of :class:`ClassificationMetric` (``average``: AUROC and
    AP only, default ``"macro"``): ``None`` keeps all samples; an int ``N`` (N evenly spaced
    thresholds in [0, 1]) or a list of thresholds keeps an O(classes x N) state whatever the
    number of samples.
    """

    hist: Tensor
    thresholds: Tensor
    preds: list[Tensor]
    target: list[Tensor]
    default_average = "macro"

    @with_base_params(ClassificationMetric.__init__)
    def __init__(
        self,
        task: str,
        *,
        thresholds: int | list[float] | Tensor | None = None,
        **kwargs: Unpack[ClassificationMetricOptions],
    ) -> None:
        super().__init__(task, **kwargs)
        thr = core.make_thresholds(self.args.metric, thresholds)
        self.binned = thr is not None
        if thr is not None:
            self.add_state("thresholds", thr, reduce=None)
            self.add_state(
                "hist",
                torch.zeros(self.args.num_outputs, 2, thr.numel() + 1, dtype=torch.long),
                reduce="sum",
                persistent=True,
            )
        else:
            self.add_state("preds", [], reduce="cat")
            self.add_state("target", [], reduce="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of scores (probabilities or logits) and targets."""
        args = self.args
        probs, tgt = core.format_scores(args, preds, target)
        if self.binned:
            probs = core.scores_to_probs(args.task, probs)
            onehot, keep = core.class_targets(args, tgt)
            self.hist += core.binned_update(probs, onehot, keep, self.thresholds)
        else:
            self.preds.append(probs.detach())
            self.target.append(tgt.detach())

    def _counts(self, micro: bool) -> tuple[list[F.Counts], Tensor]:
        if self.binned:
            return F.binned_class_counts(self.hist, self.thresholds, micro)
        task, k = self.args.task, self.args.num_outputs
        if self.preds:
            probs = core.scores_to_probs(task, torch.cat(self.preds))
            target = torch.cat(self.target)
        else:
            probs = torch.zeros(0, k, device=self.device)
            shape = (0, k) if task == "multilabel" else (0,)
            target = torch.zeros(shape, dtype=torch.long, device=self.device)
        return F.exact_class_counts(self.args, probs, target, micro)


class _Area(_CurveMetric):
    kind = ""
    higher_is_better = True

    def compute(self) -> Tensor:
        counts, support = self._counts(F.is_micro(self.args))
        return F.area_result(self.kind, self.args, counts, support)


class AUROC(_Area):
    """Area under the ROC curve.

    Example:
        >>> import torch
        >>> m = AUROC(task="binary")
        >>> m.update(torch.tensor([0.1, 0.4]), torch.tensor([0, 0]))
        >>> m.update(torch.tensor([0.35, 0.8]), torch.tensor([1, 1]))
        >>> m.compute()
        tensor(0.7500)
        >>> AUROC(task="binary", thresholds=101)(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.7500)
    """

    kind = "auroc"


class AveragePrecision(_Area):
    """Average precision (step-wise area under the precision-recall curve).

    Example:
        >>> import torch
        >>> AveragePrecision(task="binary")(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.8333)
    """

    kind = "ap"


class _Curve(_CurveMetric):
    kind = ""
    default_average = "none"  # one curve per class; ``average`` has no effect
    higher_is_better = None

    def compute(self) -> Any:
        counts, _ = self._counts(False)
        return F.curve_result(self.kind, self.args, counts, self.binned)


class ROC(_Curve):
    """ROC curve ``(fpr, tpr, thresholds)``.

    Example:
        >>> import torch
        >>> fpr, tpr, thr = ROC(task="binary")(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> tpr
        tensor([0.0000, 0.5000, 0.5000, 1.0000, 1.0000])
    """

    kind = "roc"


class PrecisionRecallCurve(_Curve):
    """Precision-recall curve ``(precision, recall, thresholds)``.

    Example:
        >>> import torch
        >>> p, r, t = PrecisionRecallCurve(task="binary")(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> r
        tensor([1.0000, 1.0000, 0.5000, 0.5000, 0.0000])
    """

    kind = "pr"
