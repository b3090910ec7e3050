"""The arithmetic of the learning-rate range test: the ramp, the smoothed loss, the suggestion.

Pure functions on lists of floats (no torch), so the rules are easy to test and to read:

- the ramp is exponential, ``min_lr * (max_lr / min_lr) ** (i / (n - 1))``;
- the smoothed loss is an exponential moving average with bias correction (fastai, Lightning);
- the test stops once the smoothed loss exceeds ``divergence_factor`` times the best one;
- ``steepest`` suggests the lr where the loss falls fastest (the most negative gradient over
  log10(lr), as Lightning, but of a zero-lag smoothing, before the lowest point);
  ``min_loss`` suggests a tenth of the lr where the smoothed loss is lowest (fastai's rule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

SUGGESTION_RULES = ("steepest", "min_loss")


def exponential_lrs(min_lr: float, max_lr: float, num_steps: int) -> list[float]:
    """``num_steps`` learning rates from ``min_lr`` to ``max_lr``, evenly spaced in log space."""
    if num_steps == 1:
        return [min_lr]
    ratio = max_lr / min_lr
    return [min_lr * ratio ** (i / (num_steps - 1)) for i in range(num_steps)]


class LossSmoother:
    """The bias-corrected exponential moving average of the losses seen so far.

    ``weight`` is the newest loss's weight (``smoothing``); the running best and the divergence
    test (``value > divergence_factor * best``) follow each update.
    """

    def __init__(self, weight: float, divergence_factor: float) -> None:
        self.weight = weight
        self.divergence_factor = divergence_factor
        self.average = 0.0
        self.count = 0
        self.best = math.inf

    def update(self, loss: float) -> float:
        """Add ``loss``; return the smoothed value."""
        self.count += 1
        self.average = self.weight * loss + (1 - self.weight) * self.average
        value = self.average / (1 - (1 - self.weight) ** self.count)
        if value < self.best:
            self.best = value
        return value

    def diverged(self, value: float) -> bool:
        """Whether ``value`` (the latest smoothed loss) is not finite or above the divergence limit."""
        return not math.isfinite(value) or (self.count > 1 and value > self.divergence_factor * self.best)


@attrs.frozen
class Suggestion:
    """The suggested lr, the rule that chose it and the index of the point it came from."""

    lr: float
    rule: str
    index: int


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float], rule: str = "steepest",
               weight: float = 0.05) -> Suggestion | None:
    """The lr the range test suggests under ``rule`` (``None``: too few finite points to say).

    Both rules look only up to the lowest point of ``smoothed`` (the running, causal average):
    after it the loss rises. ``steepest`` differentiates a zero-lag smoothing of the raw
    ``losses`` (:func:`zero_lag`, with the same ``weight``) over log10(lr), skipping the first
    tenth of the points: the running average lags ~1/weight steps behind, which would place the
    steepest fall at a larger lr. With fewer than 5 points left it falls back to ``min_loss``.
    """
    if rule not in SUGGESTION_RULES:
        raise ValueError(f"rule must be one of {SUGGESTION_RULES}, got {rule!r}")
    finite = [i for i, value in enumerate(smoothed) if math.isfinite(value) and math.isfinite(losses[i])]
    if len(finite) < 2:
        return None
    lowest = min(finite, key=lambda i: smoothed[i])
    if rule == "steepest":
        kept = [i for i in finite if i <= lowest]
        trim = len(kept) // 10
        kept = kept[trim:]
        if len(kept) >= 5:
            curve = zero_lag([losses[i] for i in kept], weight)
            slopes = _gradient([math.log10(lrs[i]) for i in kept], curve)
            best = min(range(len(slopes)), key=slopes.__getitem__)
            return Suggestion(lrs[kept[best]], "steepest", kept[best])
    return Suggestion(lrs[lowest] / 10, "min_loss", lowest)


def zero_lag(values: Sequence[float], weight: float) -> list[float]:
    """The bias-corrected exponential moving average run forward, then backward over the result:
    smooth, without the forward average's lag."""
    def ema(series: Sequence[float]) -> list[float]:
        out, average = [], 0.0
        for count, value in enumerate(series, 1):
            average = weight * value + (1 - weight) * average
            out.append(average / (1 - (1 - weight) ** count))
        return out

    return ema(ema(values)[::-1])[::-1]


def _gradient(x: Sequence[float], y: Sequence[float]) -> list[float]:
    """dy/dx at each point: one-sided at the ends, central (over uneven spacing) inside, as numpy.gradient."""
    n = len(x)
    out = [(y[1] - y[0]) / (x[1] - x[0])]
    for i in range(1, n - 1):
        h0, h1 = x[i] - x[i - 1], x[i + 1] - x[i]
        out.append((h0**2 * y[i + 1] - h1**2 * y[i - 1] + (h1**2 - h0**2) * y[i]) / (h0 * h1 * (h0 + h1)))
    out.append((y[-1] - y[-2]) / (x[-1] - x[-2]))
    return out
