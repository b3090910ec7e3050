"""The classification settings shared by the functional forms and the metric classes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import attrs
from torch import Tensor

from declarative_train.metrics.functional._checks import check_choice, check_inputs, fail

TASKS = ("binary", "multiclass", "multilabel")
AVERAGES = ("micro", "macro", "weighted", "none")


class TaskOptions(TypedDict, total=False):
    """Options of every classification function.

    The meaning of each option is documented once, on :class:`ClassificationArgs`.
    """

    num_classes: int | None
    num_labels: int | None
    ignore_index: int | None
    validate_args: bool


class CurveOptions(TaskOptions, total=False):
    """Options of ``roc`` and ``precision_recall_curve``.

    ``thresholds``: ``None`` sorts all the scores (exact, like scikit-learn); an int ``N`` (N
    evenly spaced thresholds in [0, 1]) or a list of increasing thresholds counts the samples
    in fixed bins instead. The other options: see :class:`ClassificationArgs`.
    """

    thresholds: int | list[float] | Tensor | None


class AreaOptions(CurveOptions, total=False):
    """Options of ``auroc`` and ``average_precision`` (``average`` defaults to ``"macro"``)."""

    average: str | None


class ConfusionOptions(TaskOptions, total=False):
    """Options of ``confusion_matrix``, ``matthews_corrcoef`` and ``cohen_kappa``."""

    threshold: float


class ClassificationOptions(ConfusionOptions, total=False):
    """Options of the count functions (``accuracy``, ``precision`` ... ``stat_scores``)."""

    average: str | None
    top_k: int
    zero_division: float


def _average(value: str | None) -> str:
    return "none" if value is None else value


def _number(value: float) -> float:
    # ints become floats; anything else is left as it is for the check to name
    return float(value) if isinstance(value, (int, float)) else value


def _float_text(value: float) -> float:
    # ``zero_division: nan`` in YAML arrives as the string "nan"
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@attrs.frozen(kw_only=True)
class ClassificationArgs:
    """The settings of a classification metric, checked once when the object is created.

    The functional forms (``accuracy(preds, target, task=..., **options)``) and the metric classes
    (``Accuracy(task=...)``) take these settings as keyword arguments and build one object; the
    code behind them takes the object. A bad setting raises a ``ValueError`` that names the
    metric and the argument, e.g. ``Accuracy: argument `num_labels` must be an int >= 1 ...``.

    Args:
        metric: the name used in error messages (the function or class name).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        num_classes: number of classes (multiclass, >= 2).
        num_labels: number of labels (multilabel, >= 1).
        average: ``"micro"``, ``"macro"``, ``"weighted"`` or ``"none"``/``None`` (per class);
            ignored for binary. Defaults: ``"micro"`` for the count metrics, ``"macro"`` for
            ``AUROC``/``AveragePrecision`` and ``JaccardIndex``.
        threshold: probability threshold of binary/multilabel scores (logits are sigmoided first).
        top_k: a multiclass prediction counts as correct when the target is among the ``top_k``
            highest scores (count metrics only).
        ignore_index: target value whose entries are left out.
        zero_division: value of a 0/0 score: 0, 1 or nan (as scikit-learn).
        validate_args: check the inputs of every batch (one host sync); ``False`` for speed. The
            settings themselves are always checked.

    Which function takes which options: :class:`ClassificationOptions` (count functions),
    :class:`ConfusionOptions`, :class:`AreaOptions` and :class:`CurveOptions` (which adds
    ``thresholds``).

    Example:
        >>> args = ClassificationArgs(metric="accuracy", task="multiclass", num_classes=3)
        >>> args.average, args.num_outputs
        ('micro', 3)
        >>> ClassificationArgs(metric="accuracy", task="multiclass")
        Traceback (most recent call last):
        ...
        ValueError: accuracy: argument `num_classes` must be an int >= 2 for task='multiclass', got None
    """

    metric: str
    task: str
    num_classes: int | None = None
    num_labels: int | None = None
    average: str = attrs.field(default="micro", converter=_average)
    threshold: float = attrs.field(default=0.5, converter=_number)
    top_k: int = 1
    ignore_index: int | None = None
    zero_division: float = attrs.field(default=0.0, converter=_float_text)
    validate_args: bool = True

    def __attrs_post_init__(self) -> None:
        _check_settings(self)

    @classmethod
    def from_options(
        cls,
        metric: str,
        task: str,
        options: Mapping[str, Any],
        accepted: frozenset[str],
        **defaults: Any,
    ) -> ClassificationArgs:
        """Build the object of a functional call from its ``**options`` (names in ``accepted``).

        Options that are no field (``thresholds``) are left out; ``defaults`` fill in the rest.
        """
        for key in options:
            if key not in accepted:
                raise TypeError(f"{metric}() got an unexpected keyword argument {key!r}")
        settings = {k: v for k, v in options.items() if k != "thresholds"}
        return cls(metric=metric, task=task, **{**defaults, **settings})

    @property
    def num_outputs(self) -> int:
        """Scores per sample: 1 for binary, ``num_classes`` or ``num_labels``."""
        if self.task == "binary":
            return 1
        n = self.num_classes if self.task == "multiclass" else self.num_labels
        assert n is not None
        return n

    def check_inputs(self, preds: Tensor, target: Tensor) -> None:
        """Check shapes, dtypes, label ranges and NaNs of one batch (one host sync)."""
        check_inputs(
            self.metric,
            self.task,
            preds,
            target,
            self.num_classes,
            self.num_labels,
            self.ignore_index,
        )


def _check_settings(a: ClassificationArgs) -> None:
    name = a.metric
    check_choice(name, "task", a.task, TASKS)
    check_choice(name, "average", a.average, AVERAGES)
    if a.task == "multiclass" and not (isinstance(a.num_classes, int) and a.num_classes >= 2):
        raise fail(
            name, "num_classes", f"must be an int >= 2 for task='multiclass', got {a.num_classes!r}"
        )
    if a.task == "multilabel" and not (isinstance(a.num_labels, int) and a.num_labels >= 1):
        raise fail(
            name, "num_labels", f"must be an int >= 1 for task='multilabel', got {a.num_labels!r}"
        )
    if not (isinstance(a.threshold, float) and 0.0 <= a.threshold <= 1.0):
        raise fail(name, "threshold", f"must be a float in [0, 1], got {a.threshold!r}")
    top_k = a.top_k
    if not isinstance(top_k, int) or top_k < 1:
        raise fail(name, "top_k", f"must be a positive int, got {top_k!r}")
    if top_k > 1 and (
        a.task != "multiclass" or (a.num_classes is not None and top_k > a.num_classes)
    ):
        raise fail(
            name, "top_k", f"> 1 needs task='multiclass' and top_k <= num_classes, got {top_k}"
        )
    zd = a.zero_division
    if not (isinstance(zd, (int, float)) and (zd in (0.0, 1.0) or zd != zd)):
        raise fail(name, "zero_division", f"must be 0, 1 or nan, got {zd!r}")


CURVE_KEYS = CurveOptions.__optional_keys__
AREA_KEYS = AreaOptions.__optional_keys__
CONFUSION_KEYS = ConfusionOptions.__optional_keys__
CLASSIFICATION_KEYS = ClassificationOptions.__optional_keys__
