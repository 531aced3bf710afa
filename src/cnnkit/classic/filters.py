"""Hand-made filters, the lecture's boundary conditions and separable filtering (the Haar wavelet: wavelets.py).

Conventions (ECE 285, ch. IV "Linear translation invariant filters"):

* **Cross-correlation** ``a = kappa ⋆ x``:  ``a[i, j] = sum_{k,l} conj(kappa[k, l]) x[i + k, j + l]``.
* **Convolution** ``a = nu * x``:  ``a[i, j] = sum_{k,l} nu[k, l] x[i - k, j - l]``, i.e. a
  cross-correlation with the kernel flipped in both directions (``nu[k, l] = conj(kappa[-k, -l])``).
  Most deep-learning libraries (``torch.nn.functional.conv2d`` included) compute the former and
  call it convolution.

Kernel offsets ``k`` (rows, downwards) and ``l`` (columns, rightwards) are measured from the
kernel's centre, the element at index ``(n // 2, m // 2)`` -- the same origin as
``scipy.ndimage``; for even sizes the centre sits right of / below the middle.

Boundary conditions ("how to evaluate ``x[i + k, j + l]`` outside the domain") are implemented by
virtually enlarging ``x`` with :func:`numpy.pad`:

=============  ================  =====================  ======================================
lecture        ``numpy.pad``     ``scipy.ndimage``      padded row for ``x = [a b c d]``
=============  ================  =====================  ======================================
``zero``       ``constant``      ``constant`` (cval 0)  ``0 0 | a b c d | 0 0``
``extension``  ``edge``          ``nearest``            ``a a | a b c d | d d``
``mirror``     ``symmetric``     ``reflect``            ``b a | a b c d | d c``
``periodic``   ``wrap``          ``wrap``               ``c d | a b c d | a b``
``reflect``    ``reflect``       ``mirror``             ``c b | a b c d | c b``
=============  ================  =====================  ======================================

Why ``mirror`` = ``symmetric``: the lecture "virtually enlarges x" by putting a mirror on the border
of the image domain, which lies *between* the last pixel inside and the first pixel outside, so
the pixel nearest the border sees its own reflection next to it (``x[-1] = x[0]``). The other
convention (mirror through the centre of the border pixel, ``x[-1] = x[1]``, what PyTorch calls
``reflect``) is available as the extra, non-lecture mode ``reflect``. Note the names clash between
libraries: scipy's ``reflect`` is numpy's ``symmetric`` and scipy's ``mirror`` is numpy's
``reflect``.

Output size ("for all (i, j) such that ..."): ``full`` keeps every position where the window
touches the image (size ``N + n - 1``), ``same`` keeps the image's positions (size ``N``),
``valid`` keeps the positions where the window lies inside (size ``N - n + 1``). With ``stride``
``s`` the result is the stride-1 result decimated by ``s`` (size ``ceil(size / s)``), and with
``dilation`` ``d`` the kernel taps are ``d`` pixels apart (effective size ``d (n - 1) + 1``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, DataError, suggest

# Largest kernel side a factory builds, and largest (dilated) span a filter may cover: a 257x257 kernel
# is already far beyond any lecture filter, and without a limit "size=100000" or "sigma=1e6" asks
# for tens of gigabytes before failing. The span bounds the padded copy of the image.
MAX_KERNEL_SIZE = 257
MAX_SPAN = 4097

# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------


def identity() -> np.ndarray:
    """3x3 identity kernel (seed 003): leaves the image unchanged."""
    k = np.zeros((3, 3))
    k[1, 1] = 1.0
    return k


def boxcar(n: int = 3) -> np.ndarray:
    """``n x n`` boxcar (moving average): ``kappa = 1 / n^2`` on the window, an averaging filter."""
    n = _kernel_side(n, "boxcar size n")
    return np.full((n, n), 1.0 / (n * n))


def gaussian(sigma: float = 1.0, size: int | None = None) -> np.ndarray:
    """Truncated Gaussian ``kappa[k, l] = exp(-(k^2 + l^2) / (2 sigma^2)) / Z`` (sums to 1).

    ``size`` defaults to ``2 * ceil(3 sigma) + 1`` so the truncation drops < 0.3% of the mass.
    """
    sigma = _positive_float(sigma, "gaussian sigma")
    dk, dl = _grid(size if size is not None else _side_for(sigma, "gaussian sigma"))
    g = np.exp(-(dk**2 + dl**2) / (2 * sigma**2))
    return g / g.sum()


def laplacian() -> np.ndarray:
    """Discrete Laplacian (2nd-order slopes): ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``."""
    return np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def prewitt_x() -> np.ndarray:
    """Prewitt ``kappa_vert`` (derivative along x: responds to vertical edges)."""
    return np.array([[-1.0, 0.0, 1.0]] * 3)


def prewitt_y() -> np.ndarray:
    """Prewitt ``kappa_hor`` (derivative along y: responds to horizontal edges)."""
    return prewitt_x().T.copy()


def sobel_x() -> np.ndarray:
    """Sobel derivative along x, ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (seed 003's "Sobel-Vertical")."""
    return np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_y() -> np.ndarray:
    """Sobel derivative along y, ``[[-1, -2, -1], [0, 0, 0], [1, 2, 1]]``.

    Seed 003's table prints a 1 in the centre of "Sobel-Horizontal"; that is a typo: a derivative
    filter must sum to 0 (seed 002, "derivative filters") and Sobel's transpose has a 0 there.
    """
    return sobel_x().T.copy()


def sharpen() -> np.ndarray:
    """Sharpen (seed 003): identity plus a negative Laplacian, ``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]``."""
    return np.array([[0.0, -1.0, 0.0], [-1.0, 5.0, -1.0], [0.0, -1.0, 0.0]])


def gabor(theta: float = 0.0, freq: float = 0.25, sigma: float = 2.0, size: int | None = None) -> np.ndarray:
    """Gabor filter ``exp(-(k^2 + l^2) / (2 tau^2)) cos(2 pi f (k cos theta + l sin theta))``.

    The lecture's formula verbatim (``tau`` = ``sigma``, ``k`` = row offset, ``l`` = column
    offset): with ``theta = 0`` it oscillates down the rows and so responds to horizontal stripes
    of period ``1 / freq`` pixels. ``size`` defaults to ``2 * ceil(3 sigma) + 1``.
    """
    sigma = _positive_float(sigma, "gabor sigma")
    theta, freq = _finite(theta, "gabor theta"), _finite(freq, "gabor freq")
    dk, dl = _grid(size if size is not None else _side_for(sigma, "gabor sigma"))
    envelope = np.exp(-(dk**2 + dl**2) / (2 * sigma**2))
    return envelope * np.cos(2 * np.pi * freq * (dk * np.cos(theta) + dl * np.sin(theta)))


def oriented_gaussian(
    theta: float = 0.0, sigma_u: float = 3.0, sigma_v: float = 1.0, size: int | None = None
) -> np.ndarray:
    """Anisotropic Gaussian, long (``sigma_u``) along direction ``theta``, narrow (``sigma_v``) across.

    Averages along ``theta`` only, i.e. "removes high frequencies in a given orientation". The
    direction uses the same coordinates as :func:`gabor`: ``u = k cos theta + l sin theta``.
    """
    sigma_u = _positive_float(sigma_u, "oriented_gaussian sigma_u")
    sigma_v = _positive_float(sigma_v, "oriented_gaussian sigma_v")
    theta = _finite(theta, "oriented_gaussian theta")
    dk, dl = _grid(size if size is not None else _side_for(max(sigma_u, sigma_v), "oriented_gaussian sigma"))
    u = dk * np.cos(theta) + dl * np.sin(theta)
    v = -dk * np.sin(theta) + dl * np.cos(theta)
    g = np.exp(-(u**2) / (2 * sigma_u**2) - v**2 / (2 * sigma_v**2))
    return g / g.sum()


KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "identity": identity,
    "boxcar": boxcar,
    "gaussian": gaussian,
    "laplacian": laplacian,
    "prewitt_x": prewitt_x,
    "prewitt_y": prewitt_y,
    "sobel_x": sobel_x,
    "sobel_y": sobel_y,
    "sharpen": sharpen,
    "gabor": gabor,
    "oriented_gaussian": oriented_gaussian,
}
"""Kernel name -> factory; every factory can be called without arguments."""


def get_kernel(name: str, **params: Any) -> np.ndarray:
    """Build the registered kernel ``name`` with keyword ``params`` (e.g. ``sigma=2``)."""
    if name not in KERNELS:
        raise ConfigError(f"unknown kernel {name!r}", hint=suggest(name, KERNELS))
    try:
        return KERNELS[name](**params)
    except TypeError as e:  # an unexpected keyword for this factory
        import inspect

        accepted = list(inspect.signature(KERNELS[name]).parameters)
        raise ConfigError(
            f"bad parameters {params} for kernel {name!r}: {e}",
            hint=f"{name} accepts {', '.join(accepted) or 'no parameters'}",
        ) from None


# ----------------------------------------------------------------------------------------------
# Cross-correlation / convolution with boundary conditions
# ----------------------------------------------------------------------------------------------

BOUNDARY_TO_NUMPY = {
    "zero": "constant",
    "extension": "edge",
    "mirror": "symmetric",
    "periodic": "wrap",
    "reflect": "reflect",
}
"""Lecture boundary condition -> :func:`numpy.pad` mode (see the module docstring)."""

BOUNDARY_TO_SCIPY = {
    "zero": "constant",
    "extension": "nearest",
    "mirror": "reflect",
    "periodic": "wrap",
    "reflect": "mirror",
}
"""Lecture boundary condition -> ``scipy.ndimage`` mode giving the same result."""

MODES = ("full", "same", "valid")


def correlate(
    image: np.ndarray,
    kernel: np.ndarray,
    boundary: str = "zero",
    mode: str = "same",
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    separable: bool | None = None,
) -> np.ndarray:
    """Cross-correlation ``a[i, j] = sum_{k,l} conj(kappa[k, l]) x[i + k, j + l]``.

    ``image`` is ``(H, W)`` or ``(H, W, C)`` (the 2-D kernel is applied to every channel).
    ``separable=None`` filters with two 1-D passes when the kernel is rank 1 (see
    :func:`separate`): ``O(n + m)`` instead of ``O(n m)`` operations per pixel; ``True`` insists
    (error when the kernel is not rank 1) and ``False`` always uses the 2-D kernel.
    """
    kernel = np.asarray(kernel)
    if np.iscomplexobj(kernel):
        kernel = np.conj(kernel)  # the lecture's kappa* for complex filters
    return _filter(image, kernel, boundary, mode, stride, dilation, separable, flip=False)


def convolve(
    image: np.ndarray,
    kernel: np.ndarray,
    boundary: str = "zero",
    mode: str = "same",
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    separable: bool | None = None,
) -> np.ndarray:
    """Convolution ``a[i, j] = sum_{k,l} nu[k, l] x[i - k, j - l]``: correlation with the flipped kernel.

    Same arguments as :func:`correlate`. Unlike correlation (lecture: only for Hermitian
    signals), convolution is commutative and associative, so a kernel ``h = h1 * h2`` can be
    applied as ``(x * h1) * h2``; a rank-1 kernel ``outer(col, row)`` is the simplest such case.
    """
    return _filter(image, np.asarray(kernel), boundary, mode, stride, dilation, separable, flip=True)


def _filter(
    image: np.ndarray,
    kernel: np.ndarray,
    boundary: str,
    mode: str,
    stride: int | tuple[int, int],
    dilation: int | tuple[int, int],
    separable: bool | None,
    flip: bool,
) -> np.ndarray:
    x = _check_image(image)
    if kernel.ndim != 2 or 0 in kernel.shape:
        raise ConfigError(f"kernel must be a non-empty 2-D array, got shape {kernel.shape}")
    if boundary not in BOUNDARY_TO_NUMPY:
        raise ConfigError(f"unknown boundary {boundary!r}", hint=suggest(boundary, BOUNDARY_TO_NUMPY))
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}", hint=suggest(mode, MODES))
    s = _pair(stride, "stride")
    d = _pair(dilation, "dilation")
    n, m = kernel.shape
    eff = (d[0] * (n - 1) + 1, d[1] * (m - 1) + 1)  # effective (dilated) kernel size
    if max(eff) > MAX_SPAN:
        raise ConfigError(
            f"the kernel ({n}x{m}) with dilation {d[0] if d[0] == d[1] else d} spans {eff[0]}x{eff[1]} pixels, "
            f"more than {MAX_SPAN}",
            hint="use a smaller dilation or kernel",
        )
    if flip:
        # nu[k, l] multiplies x[i - k, j - l]: correlate with nu flipped. The flip also moves the
        # origin, from index c to n - 1 - c (they differ only for even sizes, as in scipy).
        kernel = kernel[::-1, ::-1]
        before = (d[0] * (n - 1 - n // 2), d[1] * (m - 1 - m // 2))
    else:
        before = (d[0] * (n // 2), d[1] * (m // 2))
    if mode == "same":
        pad = [(before[0], eff[0] - 1 - before[0]), (before[1], eff[1] - 1 - before[1])]
    elif mode == "full":
        pad = [(eff[0] - 1, eff[0] - 1), (eff[1] - 1, eff[1] - 1)]
    else:
        pad = [(0, 0), (0, 0)]
        if x.shape[0] < eff[0] or x.shape[1] < eff[1]:
            raise DataError(
                f"image {x.shape[:2]} is smaller than the (dilated) kernel {eff}: 'valid' output is empty",
                hint="use mode='same' or 'full', or a smaller kernel/dilation",
            )
    pad += [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x, pad, mode=BOUNDARY_TO_NUMPY[boundary])  # type: ignore[call-overload]

    factors = separate(kernel) if separable is not False and min(n, m) > 1 else None
    if separable is True and factors is None and min(n, m) > 1:
        raise ConfigError("kernel is not separable (its rank is > 1)", hint="use separable=None or False")
    if factors is None:
        return _slide(xp, kernel, s, d)
    # Two 1-D passes on the already padded image give exactly the 2-D result: vertical factor
    # with the row stride/dilation, then horizontal factor with the column stride/dilation.
    col, row = factors
    tmp = _slide(xp, col[:, None], (s[0], 1), (d[0], 1))
    return _slide(tmp, row[None, :], (1, s[1]), (1, d[1]))


def _slide(
    xp: np.ndarray, kernel: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int]
) -> np.ndarray:
    """'valid' cross-correlation of an already padded image, vectorised.

    ``sliding_window_view`` is a zero-copy strided view ``(Ho, Wo, [C,] kh, kw)`` of every window;
    striding and dilating are just slices of that view, and ``einsum`` does the weighted sum
    ``sum_{k,l} kappa[k, l] window[k, l]`` for all pixels at once (no Python loop per pixel).
    """
    n, m = kernel.shape
    eff = (dilation[0] * (n - 1) + 1, dilation[1] * (m - 1) + 1)
    win = sliding_window_view(xp, eff, axis=(0, 1))
    win = win[:: stride[0], :: stride[1], ..., :: dilation[0], :: dilation[1]]
    return np.einsum("ij...kl,kl->ij...", win, kernel)


def separate(kernel: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray] | None:
    """The 1-D factors ``(col, row)`` with ``outer(col, row) == kernel``, or ``None`` if rank > 1.

    Rank test by SVD: ``kernel = sum_i s_i u_i v_i^T`` is rank 1 iff ``s_2 <= rtol * s_1``; then
    ``col = sqrt(s_1) u_1`` and ``row = sqrt(s_1) v_1``. Signs are chosen so ``col`` sums to >= 0.
    """
    k = np.asarray(kernel)
    if k.ndim != 2:
        raise ConfigError(f"separate() needs a 2-D kernel, got shape {k.shape}")
    with _single_thread_blas():
        u, sv, vt = np.linalg.svd(k)
    if sv[0] == 0:
        return np.zeros(k.shape[0], k.dtype), np.zeros(k.shape[1], k.dtype)
    if len(sv) > 1 and sv[1] > rtol * sv[0]:
        return None
    col, row = u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])
    if col.sum().real < 0 or (np.isclose(col.sum(), 0) and col[np.argmax(np.abs(col))].real < 0):
        col, row = -col, -row
    return col, row


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


_THREADPOOLS: Any = None


def _single_thread_blas() -> Any:
    """Context limiting BLAS/LAPACK to one thread.

    A kernel's SVD is tiny; waking OpenBLAS's thread pool for it cost 40+ ms (vs < 1 ms) on a
    busy 2-core machine, more than the whole separable filtering it is meant to speed up.
    """
    global _THREADPOOLS
    from threadpoolctl import ThreadpoolController

    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()  # inspecting the loaded libraries once is the slow part
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def _check_image(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim not in (2, 3) or 0 in x.shape:
        raise DataError(f"expected an (H, W) or (H, W, C) image, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.inexact):
        x = x.astype(np.float64)  # integer images would overflow / truncate in the sums
    return x


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets (the lecture's ``k``, ``l``) of a ``size x size`` kernel, from its centre."""
    size = _kernel_side(size, "kernel size")
    r = np.arange(size) - size // 2
    return np.meshgrid(r, r, indexing="ij")


def _pair(v: int | tuple[int, int], what: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2:
        raise ConfigError(f"{what} must be an int or a pair, got {v!r}")
    return (_positive_int(t[0], what), _positive_int(t[1], what))


def _positive_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def _kernel_side(v: Any, what: str) -> int:
    """A kernel side: a positive integer up to :data:`MAX_KERNEL_SIZE`."""
    n = _positive_int(v, what)
    if n > MAX_KERNEL_SIZE:
        raise ConfigError(f"{what} must be at most {MAX_KERNEL_SIZE}, got {n}")
    return n


def _side_for(sigma: float, what: str) -> int:
    """The default side ``2 ceil(3 sigma) + 1`` of a Gaussian-windowed kernel, within the size limit."""
    limit = (MAX_KERNEL_SIZE - 1) // 6
    if sigma > limit:
        raise ConfigError(f"{what} {sigma:g} needs a kernel wider than {MAX_KERNEL_SIZE} pixels",
                          hint=f"use sigma <= {limit}, or give size=N explicitly")  # fmt: skip
    return 2 * math.ceil(3 * sigma) + 1


def _finite(v: Any, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not math.isfinite(f):
        raise ConfigError(f"{what} must be a finite number, got {v!r}")
    return f


def _positive_float(v: Any, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not (f > 0 and math.isfinite(f)):
        raise ConfigError(f"{what} must be a positive (finite) number, got {v!r}")
    return f
