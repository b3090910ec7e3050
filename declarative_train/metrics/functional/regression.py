"""Functional regression metrics; each has an ``*_update`` giving sums and a ``*_compute``."""

from __future__ import annotations

import torch
from torch import Tensor

from declarative_train.metrics.functional._checks import (
    check_choice,
    check_regression_inputs,
    fail,
)

_EPS64 = float(torch.finfo(torch.float64).eps)
MULTIOUTPUT = ("uniform_average", "raw_values", "variance_weighted")


def _prep(name: str, preds: Tensor, target: Tensor, validate_args: bool) -> tuple[Tensor, Tensor]:
    if validate_args:
        check_regression_inputs(name, preds, target)
    return preds.double(), target.double()


def error_sum_update(
    kind: str, preds: Tensor, target: Tensor, name: str, validate_args: bool = True
) -> Tensor:
    """Sum over all elements of the per-element error ``kind`` in ``se|ae|sle|ape`` (float64)."""
    if kind in ("se", "ae"):  # no casts: accumulate in float64, check NaN once on the difference
        if validate_args:
            check_regression_inputs(name, preds, target, nan_check=False)
        diff = preds - target
        if validate_args and bool(torch.isnan(diff).any()):
            check_regression_inputs(name, preds, target)
        err = diff.square() if kind == "se" else diff.abs()
        return err.sum(dtype=torch.float64)
    p, t = _prep(name, preds, target, validate_args)
    if kind == "sle":
        if validate_args and bool(((p <= -1) | (t <= -1)).any()):
            raise fail(name, "preds" if bool((p <= -1).any()) else "target", "has values <= -1")
        return (torch.log1p(p) - torch.log1p(t)).square().sum()
    return ((p - t).abs() / t.abs().clamp(min=_EPS64)).sum()


def _mean_error(kind: str, name: str, preds: Tensor, target: Tensor, validate_args: bool) -> Tensor:
    total = error_sum_update(kind, preds, target, name, validate_args)
    return (total / preds.numel()).float()


def mean_squared_error(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """Mean of ``(preds - target) ** 2`` over all elements.

    Example:
        >>> import torch
        >>> mean_squared_error(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 2.0, 2.0]))
        tensor(1.3333)
    """
    return _mean_error("se", "mean_squared_error", preds, target, validate_args)


def root_mean_squared_error(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """Square root of the mean squared error.

    Example:
        >>> import torch
        >>> root_mean_squared_error(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
        tensor(1.4142)
    """
    return _mean_error("se", "root_mean_squared_error", preds, target, validate_args).sqrt()


def mean_absolute_error(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """Mean of ``|preds - target|``.

    Example:
        >>> import torch
        >>> mean_absolute_error(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 2.0]))
        tensor(1.)
    """
    return _mean_error("ae", "mean_absolute_error", preds, target, validate_args)


def mean_squared_log_error(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """Mean of ``(log1p(preds) - log1p(target)) ** 2``; values must be > -1.

    Example:
        >>> import torch
        >>> mean_squared_log_error(torch.tensor([0.0, 3.0]), torch.tensor([0.0, 1.0]))
        tensor(0.2402)
    """
    return _mean_error("sle", "mean_squared_log_error", preds, target, validate_args)


def mean_absolute_percentage_error(
    preds: Tensor, target: Tensor, validate_args: bool = True
) -> Tensor:
    """Mean of ``|preds - target| / max(|target|, eps)`` (a fraction, not percent; as sklearn).

    Example:
        >>> import torch
        >>> mean_absolute_percentage_error(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]))
        tensor(0.5000)
    """
    return _mean_error("ape", "mean_absolute_percentage_error", preds, target, validate_args)


# ----------------------------------------------------------------------------- moments


def as_2d(x: Tensor) -> Tensor:
    """(N,) -> (N, 1); (N, D) unchanged."""
    return x.unsqueeze(1) if x.ndim == 1 else x


def moment_update(preds: Tensor, target: Tensor, name: str, validate_args: bool = True) -> Tensor:
    """Per-output sums ``[n, Σp, Σt, Σp², Σt², Σpt]`` as a (6, D) float64 tensor."""
    p, t = _prep(name, preds, target, validate_args)
    if validate_args and p.ndim > 2:
        raise fail(
            name, "preds", f"must be 1-D or 2-D (N, num_outputs), got shape {tuple(p.shape)}"
        )
    p, t = as_2d(p), as_2d(t)
    n = torch.full((p.shape[1],), float(p.shape[0]), dtype=p.dtype, device=p.device)
    return torch.stack([n, p.sum(0), t.sum(0), (p * p).sum(0), (t * t).sum(0), (p * t).sum(0)])


def _centered(s: Tensor, s2: Tensor, n: Tensor) -> Tensor:
    """``Σ(x - mean)²`` from sums; cancellation noise below 1e-12 relative is set to 0."""
    out = s2 - s * s / n.clamp(min=1)
    return torch.where(out.abs() <= 1e-12 * s2.abs(), torch.zeros_like(out), out)


def _assemble(num: Tensor, den: Tensor, multioutput: str, force_finite: bool) -> Tensor:
    """``1 - num/den`` per output with scikit-learn's ``force_finite`` rules, then averaged."""
    if force_finite:
        ok = (den != 0) & (num != 0)
        scores = torch.where(
            ok, 1 - num / torch.where(ok, den, torch.ones_like(den)), torch.ones_like(num)
        )
        scores = torch.where((num != 0) & (den == 0), torch.zeros_like(scores), scores)
    else:
        scores = 1 - num / den
    if multioutput == "raw_values":
        return scores.float()
    if multioutput == "variance_weighted" and bool((den != 0).any()):
        return ((scores * den).sum() / den.sum()).float()
    return scores.mean().float()


def r2_from_moments(
    m: Tensor, multioutput: str = "uniform_average", force_finite: bool = True
) -> Tensor:
    """R² from :func:`moment_update` sums (NaN with fewer than two samples)."""
    n, sp, st, spp, stt, spt = m
    if bool((n < 2).any()):
        return torch.tensor(float("nan"))
    ss_res = spp - 2 * spt + stt
    ss_res = torch.where(ss_res.abs() <= 1e-12 * (spp + stt), torch.zeros_like(ss_res), ss_res)
    return _assemble(ss_res, _centered(st, stt, n), multioutput, force_finite)


def explained_variance_from_moments(
    m: Tensor, multioutput: str = "uniform_average", force_finite: bool = True
) -> Tensor:
    """Explained variance ``1 - Var(t - p) / Var(t)`` from :func:`moment_update` sums."""
    n, sp, st, spp, stt, spt = m
    se, se2 = st - sp, stt - 2 * spt + spp
    return _assemble(_centered(se, se2, n), _centered(st, stt, n), multioutput, force_finite)


def pearson_from_moments(m: Tensor) -> Tensor:
    """Pearson correlation per output (NaN for a constant input); a scalar for one output."""
    n, sp, st, spp, stt, spt = m
    cov = spt - sp * st / n.clamp(min=1)
    den = (_centered(sp, spp, n) * _centered(st, stt, n)).sqrt()
    out = torch.where(
        den > 0,
        cov / torch.where(den > 0, den, torch.ones_like(den)),
        torch.full_like(den, float("nan")),
    )
    out = out.clamp(-1.0, 1.0)
    return (out[0] if out.numel() == 1 else out).float()


def r2_score(
    preds: Tensor,
    target: Tensor,
    multioutput: str = "uniform_average",
    force_finite: bool = True,
    validate_args: bool = True,
) -> Tensor:
    """Coefficient of determination R² (``multioutput`` and ``force_finite`` as in scikit-learn).

    Example:
        >>> import torch
        >>> r2_score(torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0]))
        tensor(0.9486)
    """
    check_choice("r2_score", "multioutput", multioutput, MULTIOUTPUT)
    return r2_from_moments(
        moment_update(preds, target, "r2_score", validate_args), multioutput, force_finite
    )


def explained_variance(
    preds: Tensor,
    target: Tensor,
    multioutput: str = "uniform_average",
    force_finite: bool = True,
    validate_args: bool = True,
) -> Tensor:
    """Explained variance score.

    Example:
        >>> import torch
        >>> explained_variance(torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0]))
        tensor(0.9572)
    """
    check_choice("explained_variance", "multioutput", multioutput, MULTIOUTPUT)
    m = moment_update(preds, target, "explained_variance", validate_args)
    return explained_variance_from_moments(m, multioutput, force_finite)


def pearson_corrcoef(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """Pearson correlation coefficient (per output for 2-D inputs).

    Example:
        >>> import torch
        >>> pearson_corrcoef(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.tensor([1.0, 2.0, 2.0, 4.0]))
        tensor(0.9695)
    """
    return pearson_from_moments(moment_update(preds, target, "pearson_corrcoef", validate_args))


def rank_data(x: Tensor) -> Tensor:
    """Ranks (1-based, float64) along dim 0 with ties given their average rank."""
    if x.ndim > 1:
        return torch.stack([rank_data(col) for col in x.unbind(1)], dim=1)
    n = x.numel()
    if n == 0:
        return x.double()
    sorted_x, order = x.sort()
    new = torch.ones(n, dtype=torch.bool, device=x.device)
    new[1:] = sorted_x[1:] != sorted_x[:-1]
    group = new.cumsum(0) - 1
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    size = n  # upper bound on the number of groups, avoids a host sync
    sums = torch.zeros(size, dtype=torch.float64, device=x.device).index_add_(0, group, positions)
    counts = torch.zeros(size, dtype=torch.float64, device=x.device).index_add_(
        0, group, torch.ones_like(positions)
    )
    ranks = torch.empty(n, dtype=torch.float64, device=x.device)
    ranks[order] = (sums / counts.clamp(min=1))[group]
    return ranks


def spearman_from_data(preds: Tensor, target: Tensor) -> Tensor:
    """Spearman rank correlation of all the data."""
    p, t = as_2d(preds.double()), as_2d(target.double())
    rp, rt = rank_data(p), rank_data(t)
    rp, rt = rp - rp.mean(0), rt - rt.mean(0)
    den = ((rp * rp).sum(0) * (rt * rt).sum(0)).sqrt()
    out = torch.where(
        den > 0,
        (rp * rt).sum(0) / torch.where(den > 0, den, torch.ones_like(den)),
        torch.full_like(den, float("nan")),
    )
    return (out[0] if out.numel() == 1 else out).clamp(-1.0, 1.0).float()


def spearman_corrcoef(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """Spearman rank correlation (ties get average ranks, as scipy).

    Example:
        >>> import torch
        >>> spearman_corrcoef(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.tensor([1.0, 2.0, 2.0, 4.0]))
        tensor(0.9487)
    """
    p, t = _prep("spearman_corrcoef", preds, target, validate_args)
    return spearman_from_data(p, t)
