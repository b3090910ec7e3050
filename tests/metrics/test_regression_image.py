"""Regression metrics against scikit-learn / numpy / scipy; PSNR and SSIM against written-out formulas."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm
import torch
from numpy.lib.stride_tricks import sliding_window_view

from declarative_train.metrics import functional as F


def _close(ours, ref, msg="", rtol=1e-6):
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float),
        np.asarray(ref, dtype=float),
        rtol=rtol,
        atol=1e-6,
        equal_nan=True,
        err_msg=msg,
    )


def _regression_cases():
    rng = np.random.default_rng(0)
    for seed in range(4):
        t = rng.normal(3, 2, 50)
        yield f"random-{seed}", t + rng.normal(0, 1, 50), t
    yield "constant-target", rng.normal(size=20), np.full(20, 0.5)
    yield "perfect-constant", np.full(20, 0.5), np.full(20, 0.5)
    yield "single", np.array([1.5]), np.array([2.0])
    yield "ties", np.round(rng.normal(size=30)), np.round(rng.normal(size=30))


SIMPLE = {
    "mean_squared_error": skm.mean_squared_error,
    "root_mean_squared_error": skm.root_mean_squared_error,
    "mean_absolute_error": skm.mean_absolute_error,
    "mean_absolute_percentage_error": skm.mean_absolute_percentage_error,
    "r2_score": skm.r2_score,
    "explained_variance": skm.explained_variance_score,
}


@pytest.mark.parametrize("name", sorted(SIMPLE))
def test_simple_regression(name):
    for note, p, t in _regression_cases():
        ours = getattr(F, name)(torch.tensor(p), torch.tensor(t))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = SIMPLE[name](t, p)
        _close(ours, ref, f"{name} {note}", rtol=1e-5)


def test_msle():
    for note, p, t in _regression_cases():
        p, t = np.abs(p), np.abs(t)
        _close(
            F.mean_squared_log_error(torch.tensor(p), torch.tensor(t)),
            skm.mean_squared_log_error(t, p),
            note,
        )


@pytest.mark.parametrize("multioutput", ["raw_values", "uniform_average", "variance_weighted"])
@pytest.mark.parametrize("force_finite", [True, False])
def test_r2_and_explained_variance_multioutput(multioutput, force_finite):
    rng = np.random.default_rng(1)
    t = rng.normal(size=(40, 3))
    t[:, 2] = 1.0  # a constant output
    p = t + rng.normal(0, 0.5, (40, 3))
    for ours_fn, ref_fn in (
        (F.r2_score, skm.r2_score),
        (F.explained_variance, skm.explained_variance_score),
    ):
        ours = ours_fn(
            torch.tensor(p), torch.tensor(t), multioutput=multioutput, force_finite=force_finite
        )
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            ref = ref_fn(t, p, multioutput=multioutput, force_finite=force_finite)
        _close(ours, ref, f"{ours_fn.__name__} {multioutput} {force_finite}", rtol=1e-5)


def test_pearson_and_spearman():
    for note, p, t in _regression_cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_p = np.corrcoef(p, t)[0, 1] if len(p) > 1 else np.nan
            ref_s = scipy.stats.spearmanr(p, t).statistic if len(p) > 1 else np.nan
        if np.std(t) == 0 or np.std(p) == 0:
            ref_p = ref_s = np.nan
        _close(F.pearson_corrcoef(torch.tensor(p), torch.tensor(t)), ref_p, note, rtol=1e-5)
        _close(F.spearman_corrcoef(torch.tensor(p), torch.tensor(t)), ref_s, note, rtol=1e-5)


def test_spearman_multi_output():
    rng = np.random.default_rng(2)
    p, t = rng.normal(size=(30, 2)).round(1), rng.normal(size=(30, 2)).round(1)
    ours = F.spearman_corrcoef(torch.tensor(p), torch.tensor(t))
    ref = [scipy.stats.spearmanr(p[:, i], t[:, i]).statistic for i in range(2)]
    _close(ours, ref, rtol=1e-5)


# ------------------------------------------------------------------------------------------- image


def _ref_psnr(p, t, data_range):
    return 10 * np.log10(data_range**2 / np.mean((p - t) ** 2))


def _ref_ssim(x, y, data_range, win=11, sigma=1.5, k1=0.01, k2=0.03):
    """SSIM of Wang et al. (2004) on the valid window positions, written out with numpy."""
    ax = np.arange(win) - (win - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    per_image = []
    for xi, yi in zip(x, y):
        vals = []
        for xc, yc in zip(xi, yi):
            wx, wy = sliding_window_view(xc, (win, win)), sliding_window_view(yc, (win, win))
            mx, my = (wx * w).sum((-1, -2)), (wy * w).sum((-1, -2))
            vx = (wx**2 * w).sum((-1, -2)) - mx**2
            vy = (wy**2 * w).sum((-1, -2)) - my**2
            cov = (wx * wy * w).sum((-1, -2)) - mx * my
            vals.append(
                ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            )
        per_image.append(np.mean(vals))
    return np.mean(per_image)


@pytest.mark.parametrize("seed", range(3))
def test_psnr_and_ssim(seed):
    rng = np.random.default_rng(seed)
    t = rng.random((3, 2, 20, 18))
    p = np.clip(t + rng.normal(0, 0.1, t.shape), 0, 1)
    _close(
        F.peak_signal_noise_ratio(torch.tensor(p), torch.tensor(t), data_range=1.0),
        _ref_psnr(p, t, 1.0),
    )
    _close(
        F.peak_signal_noise_ratio(torch.tensor(p), torch.tensor(t)),
        _ref_psnr(p, t, t.max() - t.min()),
    )
    _close(
        F.structural_similarity_index_measure(torch.tensor(p), torch.tensor(t), data_range=1.0),
        _ref_ssim(p, t, 1.0),
        rtol=1e-5,
    )
