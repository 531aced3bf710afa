"""Haar wavelet transform and wavelet denoising (cnnkit.classic.filters)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.classic.wavelets import haar2d, ihaar2d, wavelet_denoise
from cnnkit.errors import ConfigError, DataError


@pytest.mark.parametrize("shape,levels", [((8, 8), 1), ((16, 24), 3), ((32, 16, 3), 4)])
def test_haar_round_trip_and_energy(shape, levels):
    x = np.random.default_rng(0).standard_normal(shape)
    coeffs = haar2d(x, levels)
    assert len(coeffs) == levels + 1
    # As many coefficients as pixels ("invertible transform"), and orthonormal: energy is preserved.
    flat = [coeffs[0]] + [c for lvl in coeffs[1:] for c in lvl]
    assert sum(c.size for c in flat) == x.size
    assert sum(float((c**2).sum()) for c in flat) == pytest.approx(float((x**2).sum()), rel=1e-12)
    np.testing.assert_allclose(ihaar2d(coeffs), x, atol=1e-6)
    assert np.abs(ihaar2d(coeffs) - x).max() < 1e-12


def test_haar_filters_average_and_differences():
    # One 2x2 block [[a, b], [c, d]]: average and the three differences, scaled by 1/2.
    a, b, c, d = 1.0, 2.0, 3.0, 7.0
    ca, (ch, cv, cd) = haar2d(np.array([[a, b], [c, d]]), 1)
    assert ca[0, 0] == pytest.approx((a + b + c + d) / 2)
    assert ch[0, 0] == pytest.approx((a + b - c - d) / 2)
    assert cv[0, 0] == pytest.approx((a - b + c - d) / 2)
    assert cd[0, 0] == pytest.approx((a - b - c + d) / 2)
    # A constant image has no details at any level.
    coeffs = haar2d(np.full((8, 8), 3.0), 3)
    assert all(np.abs(c).max() == 0 for lvl in coeffs[1:] for c in lvl)
    assert coeffs[0][0, 0] == pytest.approx(3.0 * 8)  # 8x8 mean times 2^levels


def test_haar_matches_pywavelets_if_installed():
    pywt = pytest.importorskip("pywt")
    x = np.random.default_rng(1).standard_normal((32, 48))
    ours, ref = haar2d(x, 3), pywt.wavedec2(x, "haar", level=3)
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-10)
    for lo, lr in zip(ours[1:], ref[1:], strict=True):
        for a, b in zip(lo, lr, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-10)


def test_haar_rejects_sizes_not_divisible():
    with pytest.raises(DataError, match="divisible by 2\\*\\*levels = 4"):
        haar2d(np.zeros((8, 6)), 2)


def test_wavelet_denoise_lowers_mse_on_a_noisy_photo():
    from skimage import data
    from skimage.transform import downscale_local_mean

    clean = downscale_local_mean(data.camera().astype(np.float64) / 255.0, (4, 4))  # 128x128, fast
    sigma = 0.1
    noisy = clean + np.random.default_rng(2).normal(0.0, sigma, clean.shape)
    mse_noisy = np.mean((noisy - clean) ** 2)
    # Well-chosen thresholds: soft ~ sigma, hard ~ 3 sigma (hard keeps large coefficients intact).
    # The universal threshold sigma * sqrt(2 log N) (sigma estimated) is safe but over-smooths.
    for mode, t, factor in [
        ("soft", sigma, 0.4),
        ("hard", 3 * sigma, 0.4),
        ("soft", None, 0.75),
        ("hard", None, 0.6),
    ]:
        den = wavelet_denoise(noisy, threshold=t, mode=mode, levels=3)
        assert den.shape == clean.shape
        mse = np.mean((den - clean) ** 2)
        assert mse < factor * mse_noisy, (mode, t, mse, mse_noisy)
    # Threshold 0 keeps every coefficient: the image comes back unchanged.
    np.testing.assert_allclose(wavelet_denoise(noisy, threshold=0.0), noisy, atol=1e-12)


def test_wavelet_denoise_pads_odd_sizes_and_colour():
    x = np.random.default_rng(3).random((37, 50, 3))
    out = wavelet_denoise(x, threshold=0.05, levels=2)
    assert out.shape == x.shape
    with pytest.raises(ConfigError, match="'medium'"):
        wavelet_denoise(x, 0.1, mode="medium")
