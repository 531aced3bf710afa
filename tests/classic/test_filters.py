"""Filters, boundary conditions, stride/dilation, separability, edges (cnnkit.classic.filters)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal

from cnnkit.classic import bank as B
from cnnkit.classic import filters as F
from cnnkit.errors import CnnkitError, ConfigError, DataError

BOUNDARIES = list(F.BOUNDARY_TO_NUMPY)  # the lecture's four plus the extra "reflect"


def rng_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def all_kernels() -> list[tuple[str, np.ndarray]]:
    """Every registered kernel at its defaults, plus a few parameter variations."""
    ks = [(name, fac()) for name, fac in F.KERNELS.items()]
    ks += [
        ("boxcar5", F.boxcar(5)),
        ("gaussian_s1.5_7", F.gaussian(1.5, 7)),
        ("gabor_pi/3", F.gabor(theta=math.pi / 3, freq=0.2, sigma=1.5)),
        ("oriented_pi/6", F.oriented_gaussian(theta=math.pi / 6, sigma_u=2.0, sigma_v=0.7)),
    ]
    return ks


# ---------------------------------------------------------------- an independent, naive oracle


def source_index(i: int, n: int, boundary: str) -> int | None:
    """Index of the pixel that virtually sits at position ``i`` of a length-``n`` signal.

    Written from the definitions (not with numpy.pad): None means "zero".
    """
    if 0 <= i < n:
        return i
    if boundary == "zero":
        return None
    if boundary == "extension":
        return min(max(i, 0), n - 1)
    if boundary == "periodic":
        return i % n
    if boundary == "mirror":  # mirror on the border between pixels: ... b a | a b c d | d c ...
        t = i % (2 * n)
        return t if t < n else 2 * n - 1 - t
    if boundary == "reflect":  # mirror through the border pixel's centre: ... c b | a b c d | c b ...
        if n == 1:
            return 0
        t = i % (2 * n - 2)
        return t if t < n else 2 * n - 2 - t
    raise AssertionError(boundary)


def naive_correlate(x, k, boundary, mode, stride=(1, 1), dilation=(1, 1)):
    """a[i, j] = sum_{a,b} k[a, b] x[i0 + i*s + a*d, j0 + j*s + b*d], one pixel at a time."""
    (h, w), (n, m) = x.shape, k.shape
    (sh, sw), (dh, dw) = stride, dilation
    eh, ew = dh * (n - 1) + 1, dw * (m - 1) + 1
    if mode == "same":
        starts, sizes = (-dh * (n // 2), -dw * (m // 2)), (h, w)
    elif mode == "full":
        starts, sizes = (-(eh - 1), -(ew - 1)), (h + eh - 1, w + ew - 1)
    else:
        starts, sizes = (0, 0), (h - eh + 1, w - ew + 1)
    out = np.zeros((math.ceil(sizes[0] / sh), math.ceil(sizes[1] / sw)))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            acc = 0.0
            for a in range(n):
                for b in range(m):
                    r = source_index(starts[0] + i * sh + a * dh, h, boundary)
                    c = source_index(starts[1] + j * sw + b * dw, w, boundary)
                    if r is not None and c is not None:
                        acc += k[a, b] * x[r, c]
            out[i, j] = acc
    return out


# ---------------------------------------------------------------- scipy.ndimage, 'same' mode


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_same_mode_matches_scipy_ndimage_for_every_kernel(boundary):
    x = rng_image((23, 29))
    mode = F.BOUNDARY_TO_SCIPY[boundary]
    for name, k in all_kernels():
        np.testing.assert_allclose(
            F.correlate(x, k, boundary),
            ndi.correlate(x, k, mode=mode),
            atol=1e-6,
            err_msg=f"correlate {name} {boundary}",
        )
        np.testing.assert_allclose(
            F.convolve(x, k, boundary),
            ndi.convolve(x, k, mode=mode),
            atol=1e-6,
            err_msg=f"convolve {name} {boundary}",
        )


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_multichannel_and_even_kernels_match_scipy(boundary):
    x = rng_image((12, 15, 3), seed=1)
    k = np.random.default_rng(2).standard_normal((4, 3))  # even height: origin convention matters
    mode = F.BOUNDARY_TO_SCIPY[boundary]
    k3 = k[:, :, None]  # same 2-D kernel on every channel, no mixing
    np.testing.assert_allclose(F.correlate(x, k, boundary), ndi.correlate(x, k3, mode=mode), atol=1e-6)
    np.testing.assert_allclose(F.convolve(x, k, boundary), ndi.convolve(x, k3, mode=mode), atol=1e-6)


def test_convolution_is_correlation_with_the_flipped_kernel():
    x = rng_image((10, 11))
    k = np.random.default_rng(3).standard_normal((3, 5))
    a = F.convolve(x, k, "periodic")
    b = F.correlate(x, k[::-1, ::-1], "periodic")
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.abs(a - F.correlate(x, k, "periodic")).max() > 1e-3  # they differ for asymmetric kernels


def test_complex_kernel_correlation_uses_the_conjugate():
    # Lecture: a = kappa ⋆ x = nu * x with nu[k, l] = conj(kappa[-k, -l]).
    x = rng_image((9, 9))
    g = np.random.default_rng(4)
    kappa = g.standard_normal((3, 3)) + 1j * g.standard_normal((3, 3))
    np.testing.assert_allclose(F.correlate(x, kappa), F.convolve(x, np.conj(kappa[::-1, ::-1])), atol=1e-12)
    np.testing.assert_allclose(F.correlate(x, kappa).imag, -F.correlate(x, kappa.imag), atol=1e-12)


# ---------------------------------------------------------------- full / valid / stride / dilation


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_all_modes_match_a_naive_per_pixel_oracle(boundary, mode):
    x = rng_image((9, 11), seed=5)
    k = np.random.default_rng(6).standard_normal((3, 4))
    for stride, dilation in [((1, 1), (1, 1)), ((2, 3), (1, 1)), ((1, 1), (2, 1)), ((2, 2), (2, 2))]:
        want = naive_correlate(x, k, boundary, mode, stride, dilation)
        got = F.correlate(x, k, boundary, mode, stride=stride, dilation=dilation)
        np.testing.assert_allclose(
            got, want, atol=1e-10, err_msg=f"{boundary} {mode} s={stride} d={dilation}"
        )


def test_full_and_valid_match_scipy_signal_and_slicing():
    x = rng_image((13, 10), seed=7)
    for _, k in all_kernels():
        np.testing.assert_allclose(
            F.correlate(x, k, "zero", "full"), scipy.signal.correlate2d(x, k, "full"), atol=1e-6
        )
        np.testing.assert_allclose(
            F.convolve(x, k, "zero", "full"), scipy.signal.convolve2d(x, k, "full"), atol=1e-6
        )
        if k.shape[0] <= x.shape[0] and k.shape[1] <= x.shape[1]:
            valid = F.correlate(x, k, "zero", "valid")
            np.testing.assert_allclose(valid, scipy.signal.correlate2d(x, k, "valid"), atol=1e-6)
            # 'valid' is the part of 'same' untouched by the boundary, whatever the boundary is.
            c0, c1 = k.shape[0] // 2, k.shape[1] // 2
            for b in BOUNDARIES:
                same = F.correlate(x, k, b, "same")
                np.testing.assert_allclose(
                    valid, same[c0 : c0 + valid.shape[0], c1 : c1 + valid.shape[1]], atol=1e-9
                )


def test_padding_parameter_equivalences():
    # Lecture: zero-pad by p then 'valid'; p = 0 ≡ valid, p = (n-1)/2 ≡ same, p = n-1 ≡ full.
    x, k = rng_image((8, 9), seed=8), F.gaussian(1.0, 5)
    for p, mode in [(0, "valid"), (2, "same"), (4, "full")]:
        np.testing.assert_allclose(
            F.correlate(np.pad(x, p), k, "zero", "valid"), F.correlate(x, k, "zero", mode), atol=1e-12
        )


def test_zero_padding_matches_torch_conv2d_with_stride_and_dilation():
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional
    x = rng_image((17, 20), seed=9)
    xt = torch.from_numpy(x)[None, None]
    for name, k in all_kernels():
        kt = torch.from_numpy(k.copy())[None, None]
        n, m = k.shape
        # 'same' with zero padding: conv2d is a cross-correlation.
        ref = fn.conv2d(xt, kt, padding=(n // 2, m // 2))[0, 0].numpy()
        np.testing.assert_allclose(F.correlate(x, k, "zero", "same"), ref, atol=1e-6, err_msg=name)
        # Convolution = conv2d with the flipped kernel.
        ref = fn.conv2d(xt, kt.flip(-1, -2), padding=(n // 2, m // 2))[0, 0].numpy()
        np.testing.assert_allclose(F.convolve(x, k, "zero", "same"), ref, atol=1e-6, err_msg=name)
    k = np.random.default_rng(10).standard_normal((3, 3))
    kt = torch.from_numpy(k)[None, None]
    for s, d in [(2, 1), (3, 1), (1, 2), (2, 2), ((2, 1), (1, 3))]:
        ref = fn.conv2d(xt, kt, stride=s, dilation=d)[0, 0].numpy()
        np.testing.assert_allclose(F.correlate(x, k, "zero", "valid", stride=s, dilation=d), ref, atol=1e-6)
        dd = (d, d) if isinstance(d, int) else d
        ref = fn.conv2d(xt, kt, stride=s, dilation=d, padding=(dd[0], dd[1]))[0, 0].numpy()
        np.testing.assert_allclose(F.correlate(x, k, "zero", "same", stride=s, dilation=d), ref, atol=1e-6)


# ---------------------------------------------------------------- the lecture's boxcar example

# Seed 002, "3x3 boxcar convolution": the 10x10 input (complete in the strided-convolution frames).
LECTURE_IMAGE = """
0 0 0 0 0 0 0 0 0 0
0 0 0 0 0 0 0 0 0 0
0 0 0 90 90 90 90 90 0 0
0 0 0 90 90 90 90 90 0 0
0 0 0 90 90 90 90 90 0 0
0 0 0 90 0 90 90 90 0 0
0 0 0 90 90 90 90 90 0 0
0 0 0 0 0 0 0 0 0 0
0 0 90 0 0 0 0 0 0 0
0 0 0 0 0 0 0 0 0 0
"""
# The 8x8 result as printed in the seed text; '.' marks cells the text extraction lost.
LECTURE_BOXCAR = """
.  10 .  30 30 30 20 10
.  20 .  60 60 60 40 20
0  30 60 90 90 90 60 30
0  30 50 80 80 90 60 30
0  30 50 80 80 90 60 30
0  20 30 50 50 60 40 20
10 20 30 30 30 30 20 10
10 10 .  0  0  0  .  0
"""
# Stride 2 ("3x3 boxcar strided convolution with stride s = 2"): cells legible in the frames.
LECTURE_STRIDE2 = """
0  20 30 20
0  .  90 .
.  .  80 .
10 .  .  .
"""


def parse(text: str) -> np.ndarray:
    return np.array(
        [[np.nan if v == "." else float(v) for v in row.split()] for row in text.strip().splitlines()]
    )


def test_lecture_boxcar_example_value_for_value():
    x = parse(LECTURE_IMAGE)
    out = F.correlate(x, F.boxcar(3), "zero", "valid")
    want = parse(LECTURE_BOXCAR)
    assert out.shape == want.shape == (8, 8)
    known = ~np.isnan(want)
    np.testing.assert_allclose(out[known], want[known], atol=1e-9)
    assert known.sum() == 58  # all but the 6 cells the extraction lost
    # The lost cells: check them against the per-pixel definition instead.
    np.testing.assert_allclose(out, naive_correlate(x, F.boxcar(3), "zero", "valid"), atol=1e-9)
    np.testing.assert_allclose(
        F.convolve(x, F.boxcar(3), "zero", "valid"), out, atol=1e-9
    )  # symmetric kernel


def test_lecture_boxcar_example_with_stride_2():
    x = parse(LECTURE_IMAGE)
    out = F.correlate(x, F.boxcar(3), "zero", "valid", stride=2)
    want = parse(LECTURE_STRIDE2)
    assert out.shape == (math.ceil((10 - 3 + 1) / 2),) * 2 == (4, 4)  # ceil((w - n + 1) / s)
    known = ~np.isnan(want)
    np.testing.assert_allclose(out[known], want[known], atol=1e-9)
    # "Equivalent to subsampling/decimating the standard convolution".
    np.testing.assert_allclose(out, F.correlate(x, F.boxcar(3), "zero", "valid")[::2, ::2], atol=1e-12)


# ---------------------------------------------------------------- kernels, separability, edges


def test_kernel_properties():
    for name in ("boxcar", "gaussian", "oriented_gaussian"):  # averaging filters sum to 1
        assert F.get_kernel(name).sum() == pytest.approx(1.0)
    for name in ("laplacian", "prewitt_x", "prewitt_y", "sobel_x", "sobel_y"):  # derivative filters sum to 0
        assert F.get_kernel(name).sum() == pytest.approx(0.0)
    x = rng_image((7, 8))
    np.testing.assert_allclose(F.correlate(x, F.identity(), "mirror"), x)
    assert F.gaussian(sigma=2.0).shape == (13, 13)  # 2 * ceil(3 sigma) + 1
    # Gabor with theta = 0 oscillates down the rows: constant along each row.
    g = F.gabor(theta=0.0, freq=0.25, sigma=50.0, size=9)
    np.testing.assert_allclose(g / g[:, 4:5], np.ones_like(g), atol=1e-2)
    # Oriented Gaussian: spread sigma_u along theta, sigma_v across (second moments of the kernel).
    for theta, along, across in [(0.0, (1, 0), (0, 1)), (math.pi / 2, (0, 1), (1, 0))]:
        og = F.oriented_gaussian(theta=theta, sigma_u=3.0, sigma_v=1.0)
        kk, ll = np.meshgrid(
            np.arange(og.shape[0]) - og.shape[0] // 2,
            np.arange(og.shape[1]) - og.shape[1] // 2,
            indexing="ij",
        )
        var = {d: float((og * (kk * d[0] + ll * d[1]) ** 2).sum()) for d in (along, across)}
        assert var[along] == pytest.approx(9.0, rel=0.02) and var[across] == pytest.approx(1.0, rel=0.02)


def test_separate_rank_one_kernels():
    for name in ("boxcar", "gaussian", "prewitt_x", "prewitt_y", "sobel_x", "sobel_y"):
        k = F.get_kernel(name)
        col, row = F.separate(k)
        np.testing.assert_allclose(np.outer(col, row), k, atol=1e-12)
    for name in ("laplacian", "sharpen"):
        assert F.separate(F.get_kernel(name)) is None
    assert F.separate(F.gabor(theta=math.pi / 4)) is None
    assert F.separate(F.gabor(theta=0.0)) is not None  # axis-aligned Gabor is a product of 1-D factors


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_separable_path_gives_the_2d_result(boundary):
    x = rng_image((21, 18, 2), seed=11)
    for k in (F.gaussian(1.3, 7), F.sobel_y(), F.boxcar(4)):
        for mode, s, d in [("same", 1, 1), ("full", 2, 1), ("valid", 1, 2), ("same", (2, 3), (1, 2))]:
            a = F.correlate(x, k, boundary, mode, s, d, separable=False)
            b = F.correlate(x, k, boundary, mode, s, d, separable=True)
            np.testing.assert_allclose(a, b, atol=1e-12)
            a = F.convolve(x, k, boundary, mode, s, d, separable=False)
            b = F.convolve(x, k, boundary, mode, s, d, separable=True)
            np.testing.assert_allclose(a, b, atol=1e-12)
    with pytest.raises(ConfigError, match="not separable"):
        F.correlate(x, F.laplacian(), separable=True)


def test_edge_magnitude_matches_scipy_and_skimage():
    from skimage import filters as skf

    x = rng_image((20, 24), seed=12)
    # skimage's sobel: sqrt((gx^2 + gy^2) / 2) with kernels scaled by 1/4, 'reflect' (= our mirror).
    np.testing.assert_allclose(B.edge_magnitude(x, "sobel", "l2") / (4 * np.sqrt(2)), skf.sobel(x), atol=1e-6)
    want = np.maximum(np.abs(ndi.prewitt(x, axis=0)), np.abs(ndi.prewitt(x, axis=1)))
    np.testing.assert_allclose(B.edge_magnitude(x, "prewitt", "max"), want, atol=1e-6)
    # A vertical step edge: strong response on the step, none in the flat parts.
    step = np.zeros((10, 10))
    step[:, 5:] = 1.0
    e = B.edge_magnitude(step)
    assert e[:, 4:6].min() > 1 and e[:, :3].max() < 1e-12 and e[:, 7:].max() < 1e-12


def test_bad_arguments_name_the_value():
    x = rng_image((5, 5))
    with pytest.raises(ConfigError, match="'mirorr'") as ei:
        F.correlate(x, F.boxcar(), boundary="mirorr")
    assert "mirror" in str(ei.value)
    with pytest.raises(ConfigError, match="'vaild'"):
        F.correlate(x, F.boxcar(), mode="vaild")
    with pytest.raises(CnnkitError, match="'sobelx'") as ei:
        F.get_kernel("sobelx")
    assert "sobel_x" in str(ei.value.hint)
    with pytest.raises(ConfigError, match="stride"):
        F.correlate(x, F.boxcar(), stride=0)
    with pytest.raises(DataError, match="smaller than"):
        F.correlate(x, F.boxcar(7), mode="valid")
    with pytest.raises(ConfigError, match="sigma"):
        F.gaussian(sigma=-1)
