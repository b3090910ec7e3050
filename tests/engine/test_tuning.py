"""The range test's arithmetic, the batch-size search and the memory probe, without a run."""

from __future__ import annotations

import math

import pytest
import torch

from declarative_train.engine.batch_size_search import TensorMemoryProbe, Trial, search_batch_size
from declarative_train.engine.lr_range import LossSmoother, exponential_lrs, suggest_lr, zero_lag


def test_the_ramp_is_exponential_from_min_to_max() -> None:
    lrs = exponential_lrs(1e-6, 1.0, 7)
    assert lrs[0] == 1e-6 and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert ratios == pytest.approx([10.0] * 6)


def test_the_smoothed_loss_is_bias_corrected_and_divergence_is_relative_to_the_best() -> None:
    smoother = LossSmoother(0.05, divergence_factor=4.0)
    assert smoother.update(2.0) == pytest.approx(2.0)  # no pull towards 0 at the start
    assert smoother.update(2.0) == pytest.approx(2.0)
    assert not smoother.diverged(7.9)
    assert smoother.diverged(8.1)
    assert smoother.diverged(math.nan)


def _curve(lrs: list[float], centre: float) -> list[float]:
    """A loss that falls fastest at ``centre`` (a logistic in log10 lr) and blows up two decades later."""
    return [1 + 2 / (1 + math.exp(3 * (math.log10(lr) - math.log10(centre)))) + max(0.0, math.log10(lr / centre) - 2) ** 3
            for lr in lrs]


def test_steepest_finds_the_fastest_fall_and_min_loss_a_tenth_of_the_lowest() -> None:
    lrs = exponential_lrs(1e-6, 1.0, 100)
    losses = _curve(lrs, 1e-3)
    smoother = LossSmoother(0.05, 4.0)
    smoothed = [smoother.update(loss) for loss in losses]
    steepest = suggest_lr(lrs, losses, smoothed, "steepest")
    assert steepest is not None and steepest.rule == "steepest"
    assert 10**-3.3 < steepest.lr < 10**-2.7  # the running average alone would land later
    lowest = min(range(100), key=smoothed.__getitem__)
    by_min_loss = suggest_lr(lrs, losses, smoothed, "min_loss")
    assert by_min_loss is not None and by_min_loss.lr == pytest.approx(lrs[lowest] / 10)
    assert suggest_lr(lrs[:1], losses[:1], smoothed[:1]) is None
    assert suggest_lr(lrs[:3], losses[:3], smoothed[:3]).rule == "min_loss"  # type: ignore[union-attr]


def test_zero_lag_smoothing_keeps_a_step_where_it_is() -> None:
    values = [1.0] * 50 + [0.0] * 50
    smooth = zero_lag(values, 0.2)
    assert smooth[45] > 0.5 > smooth[54]


def _fits_up_to(largest: int) -> tuple[list[int], object]:
    tried: list[int] = []

    def trial(size: int) -> Trial:
        tried.append(size)
        return Trial(size, size <= largest, size * 10, samples_per_s=float(size))

    return tried, trial


@pytest.mark.parametrize(("mode", "chosen"), [("power", 64), ("binsearch", 100)])
def test_the_search_doubles_then_bisects(mode: str, chosen: int) -> None:
    tried, trial = _fits_up_to(100)
    assert search_batch_size(trial, start=16, limit=1000, mode=mode)[0] == chosen  # type: ignore[arg-type]
    assert tried[:4] == [16, 32, 64, 128]


def test_the_search_stops_at_the_split_size_and_clamps_the_start() -> None:
    _, trial = _fits_up_to(10**6)
    assert search_batch_size(trial, start=16, limit=300)[0] == 300  # type: ignore[arg-type]
    assert search_batch_size(trial, start=512, limit=300)[0] == 300  # type: ignore[arg-type]
    _, nothing = _fits_up_to(8)
    assert search_batch_size(nothing, start=16, limit=300)[0] is None  # type: ignore[arg-type]


def test_throughput_picks_the_fastest_size_tried() -> None:
    def trial(size: int) -> Trial:
        return Trial(size, size <= 512, samples_per_s={128: 900.0}.get(size, 100.0))

    assert search_batch_size(trial, start=32, limit=4096, mode="throughput")[0] == 128


def test_the_probe_sees_tensors_made_and_freed_during_a_step() -> None:
    with TensorMemoryProbe(baseline=100) as probe:
        big = torch.ones(1 << 18)  # 1 MiB
        del big
        small = torch.ones(16) * 2
    assert probe.peak >= 100 + (1 << 20)
    assert probe.current < 100 + (1 << 20)  # the big one was freed
    assert small.sum() == 32
