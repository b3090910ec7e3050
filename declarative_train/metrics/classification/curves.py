"""AUROC, average precision, ROC and precision-recall curves (exact or binned)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from declarative_train.metrics.functional import _curve_core as core
from declarative_train.metrics.functional import curves as F
from declarative_train.metrics.functional._checks import check_task_args
from declarative_train.metrics.metric import Metric


class _CurveMetric(Metric):
    """Keeps every score (exact) or, with ``thresholds``, a fixed-size histogram per class.

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        num_classes / num_labels: number of classes / labels.
        average: ``"macro"``, ``"weighted"``, ``"micro"`` or ``"none"`` (AUROC and AP only).
        thresholds: ``None`` keeps all samples; an int ``N`` (N evenly spaced thresholds in [0, 1])
            or a list of thresholds keeps an O(classes x N) state whatever the number of samples.
        ignore_index: target value to leave out.
        validate_args: check inputs on every update (one host sync); ``False`` for speed.
    """

    hist: Tensor
    thresholds: Tensor
    preds: list[Tensor]
    target: list[Tensor]

    def __init__(
        self,
        task: str,
        num_classes: int | None = None,
        num_labels: int | None = None,
        average: str | None = "macro",
        thresholds: int | list[float] | Tensor | None = None,
        ignore_index: int | None = None,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        self.average = check_task_args(
            name, task, num_classes, num_labels, average, averages=F.CURVE_AVERAGES
        )
        self.task, self.num_classes, self.num_labels = task, num_classes, num_labels
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        thr = core.make_thresholds(name, thresholds)
        self.binned = thr is not None
        if thr is not None:
            k = 1 if task == "binary" else (num_classes if task == "multiclass" else num_labels)
            assert k is not None
            self.add_state("thresholds", thr, reduce=None)
            self.add_state(
                "hist",
                torch.zeros(k, 2, thr.numel() + 1, dtype=torch.long),
                reduce="sum",
                persistent=True,
            )
        else:
            self.add_state("preds", [], reduce="cat")
            self.add_state("target", [], reduce="cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of scores (probabilities or logits) and targets."""
        probs, tgt = core.format_scores(
            type(self).__name__,
            self.task,
            preds,
            target,
            self.num_classes,
            self.num_labels,
            self.ignore_index,
            self.validate_args,
        )
        if self.binned:
            probs = core.scores_to_probs(self.task, probs)
            onehot, keep = core.class_targets(self.task, tgt, probs.shape[1], self.ignore_index)
            self.hist += core.binned_update(probs, onehot, keep, self.thresholds)
        else:
            self.preds.append(probs.detach())
            self.target.append(tgt.detach())

    def _counts(self, micro: bool) -> tuple[list[F.Counts], Tensor]:
        if self.binned:
            return F.binned_class_counts(self.hist, self.thresholds, micro)
        k = (
            1
            if self.task == "binary"
            else (self.num_classes if self.task == "multiclass" else self.num_labels)
        )
        assert k is not None
        if self.preds:
            probs = core.scores_to_probs(self.task, torch.cat(self.preds))
            target = torch.cat(self.target)
        else:
            probs = torch.zeros(0, k, device=self.device)
            shape = (0, k) if self.task == "multilabel" else (0,)
            target = torch.zeros(shape, dtype=torch.long, device=self.device)
        return F.exact_class_counts(self.task, probs, target, self.ignore_index, micro)


class _Area(_CurveMetric):
    kind = ""

    def compute(self) -> Tensor:
        micro = self.average == "micro" and self.task != "binary"
        counts, support = self._counts(micro)
        return F.area_result(self.kind, self.task, counts, support, self.average)


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

    def __init__(self, task: str, **kwargs: Any) -> None:
        kwargs.setdefault("average", "none")
        super().__init__(task, **kwargs)

    def compute(self) -> Any:
        counts, _ = self._counts(False)
        return F.curve_result(self.kind, self.task, counts, self.binned)


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
