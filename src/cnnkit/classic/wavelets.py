"""The Haar wavelet (Haar 1901; multi-scale analysis, Mallat 1989): analysis, synthesis, denoising."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError, suggest
from .filters import _check_image, _positive_int

# Written by hand rather than with PyWavelets: one level is just the lecture's recipe -- average
# and difference along rows and columns (a bank of 4 orthogonal 2x2 filters) followed by
# decimation by 2 -- which takes a few lines of slicing and keeps the maths visible. PyWavelets
# (optional) is only used by the tests as a cross-check of sign and layout conventions.

HaarCoeffs = list  # [cA_n, (cH_n, cV_n, cD_n), ..., (cH_1, cV_1, cD_1)], as pywt.wavedec2


def haar2d(image: np.ndarray, levels: int = 1) -> HaarCoeffs:
    """Multi-level orthonormal 2-D Haar transform, laid out like ``pywt.wavedec2(x, "haar")``.

    Each level splits the current approximation into 2x2 blocks ``[[a, b], [c, d]]`` and keeps
    ``cA = (a+b+c+d)/2`` (average), ``cH = (a+b-c-d)/2`` (vertical difference: horizontal
    details), ``cV = (a-b+c-d)/2`` (horizontal difference: vertical details) and
    ``cD = (a-b-c+d)/2``. The 1/2 (= 1/sqrt(2) per axis) keeps the transform orthonormal, so it
    preserves energy and its inverse is its transpose. Needs H and W divisible by ``2**levels``.
    """
    x = _check_image(image)
    levels = _positive_int(levels, "levels")
    f = 2**levels
    if x.shape[0] % f or x.shape[1] % f:
        raise DataError(
            f"image size {x.shape[:2]} is not divisible by 2**levels = {f}",
            hint="crop or pad the image, or use fewer levels (wavelet_denoise pads for you)",
        )
    details = []
    for _ in range(levels):
        a, b = x[0::2, 0::2], x[0::2, 1::2]
        c, d = x[1::2, 0::2], x[1::2, 1::2]
        details.append(((a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2))
        x = (a + b + c + d) / 2
    return [x, *details[::-1]]


def ihaar2d(coeffs: HaarCoeffs) -> np.ndarray:
    """Inverse of :func:`haar2d` (exact up to rounding: the transform is orthonormal)."""
    x = np.asarray(coeffs[0])
    for ch, cv, cd in coeffs[1:]:
        if ch.shape != x.shape:
            raise DataError(f"Haar coefficient shapes do not match: {ch.shape} vs approximation {x.shape}")
        out = np.empty((2 * x.shape[0], 2 * x.shape[1], *x.shape[2:]), dtype=np.result_type(x, ch))
        out[0::2, 0::2] = (x + ch + cv + cd) / 2
        out[0::2, 1::2] = (x + ch - cv - cd) / 2
        out[1::2, 0::2] = (x - ch + cv - cd) / 2
        out[1::2, 1::2] = (x - ch - cv + cd) / 2
        x = out
    return x


def wavelet_denoise(
    image: np.ndarray, threshold: float | None = None, mode: str = "soft", levels: int = 3
) -> np.ndarray:
    """Denoise by non-linear shrinkage of the Haar detail coefficients (the approximation is kept).

    ``mode="hard"`` zeroes coefficients with ``|c| <= t``; ``mode="soft"`` also shrinks the others
    towards 0 by ``t``. ``threshold=None`` uses the universal threshold ``sigma sqrt(2 log N)``
    with the noise ``sigma`` estimated from the finest diagonal details (median(|cD_1|) / 0.6745),
    valid because the transform is orthonormal (white noise stays white with the same sigma).
    The image is padded symmetrically to a multiple of ``2**levels`` and cropped back.
    """
    if mode not in ("soft", "hard"):
        raise ConfigError(f"unknown threshold mode {mode!r}", hint=suggest(mode, ["soft", "hard"]))
    x = _check_image(image)
    f = 2 ** _positive_int(levels, "levels")
    h, w = x.shape[:2]
    pad = [(0, -h % f), (0, -w % f)] + [(0, 0)] * (x.ndim - 2)
    coeffs = haar2d(np.pad(x, pad, mode="symmetric"), levels)
    if threshold is None:
        sigma = np.median(np.abs(coeffs[-1][2])) / 0.6745
        threshold = float(sigma * np.sqrt(2 * np.log(x.size)))
    if threshold < 0:
        raise ConfigError(f"threshold must be >= 0, got {threshold}")

    def shrink(c: np.ndarray) -> np.ndarray:
        if mode == "hard":
            return np.where(np.abs(c) > threshold, c, 0.0)
        return np.sign(c) * np.maximum(np.abs(c) - threshold, 0.0)

    out = ihaar2d([coeffs[0]] + [tuple(shrink(c) for c in lvl) for lvl in coeffs[1:]])
    return out[:h, :w]
