"""The lecture's filter bank on one image, and filter responses saved as viewable PNGs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, suggest
from .filters import _check_image, convolve, correlate, get_kernel, prewitt_x, prewitt_y, sobel_x, sobel_y


def edge_magnitude(
    image: np.ndarray, op: str = "sobel", pool: str = "l2", boundary: str = "mirror"
) -> np.ndarray:
    """Edge strength by pooling the vertical and horizontal derivative responses.

    The lecture's "detect edges? pool the answers": ``max(|k_vert * x|, |k_hor * x|)`` (``pool=
    "max"``) or ``sqrt(|k_vert * x|^2 + |k_hor * x|^2)`` (``pool="l2"``), with Prewitt or Sobel.
    """
    ops = {"sobel": (sobel_x, sobel_y), "prewitt": (prewitt_x, prewitt_y)}
    if op not in ops:
        raise ConfigError(f"unknown edge operator {op!r}", hint=suggest(op, ops))
    if pool not in ("l2", "max"):
        raise ConfigError(f"unknown pooling {pool!r}", hint=suggest(pool, ["l2", "max"]))
    gx = convolve(image, ops[op][0](), boundary=boundary)
    gy = convolve(image, ops[op][1](), boundary=boundary)
    return np.sqrt(gx**2 + gy**2) if pool == "l2" else np.maximum(np.abs(gx), np.abs(gy))


# The lecture's filters with parameters that show their effect on a ~256-pixel image.
BANK: list[tuple[str, str, dict[str, Any]]] = [
    ("identity", "identity", {}),
    ("boxcar 7x7", "boxcar", {"n": 7}),
    ("gaussian sigma=2", "gaussian", {"sigma": 2.0}),
    ("laplacian", "laplacian", {}),
    ("prewitt_x (vertical edges)", "prewitt_x", {}),
    ("prewitt_y (horizontal edges)", "prewitt_y", {}),
    ("sobel_x", "sobel_x", {}),
    ("sobel_y", "sobel_y", {}),
    ("sharpen", "sharpen", {}),
    ("gabor theta=0 f=0.15", "gabor", {"theta": 0.0, "freq": 0.15, "sigma": 3.0}),
    ("gabor theta=pi/2 f=0.15", "gabor", {"theta": np.pi / 2, "freq": 0.15, "sigma": 3.0}),
    (
        "oriented gaussian theta=pi/4",
        "oriented_gaussian",
        {"theta": np.pi / 4, "sigma_u": 4.0, "sigma_v": 1.0},
    ),
]


def filter_bank(image: np.ndarray, boundary: str = "mirror") -> dict[str, np.ndarray]:
    """Responses of every lecture filter (:data:`BANK`) plus pooled edge magnitudes, by title."""
    out = {
        title: correlate(image, get_kernel(name, **params), boundary=boundary) for title, name, params in BANK
    }
    out["edges: sobel, l2 pooling"] = edge_magnitude(image, "sobel", "l2", boundary)
    out["edges: prewitt, max pooling"] = edge_magnitude(image, "prewitt", "max", boundary)
    return out


def to_uint8(response: np.ndarray) -> np.ndarray:
    """Min-max normalise a filter response to 0..255 for display (a constant image becomes 0).

    One range for all channels, so colours keep their balance; for a signed derivative response
    mid-grey is 0 only if the response is symmetric, as in any min-max display.
    """
    r = np.real(np.asarray(response, dtype=np.complex128 if np.iscomplexobj(response) else np.float64))
    lo, hi = float(r.min()), float(r.max())
    if hi <= lo:
        return np.zeros(r.shape, np.uint8)
    return np.round((r - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def save_image(path: str, response: np.ndarray) -> tuple[int, ...]:
    """Write a response as a viewable PNG (normalised with :func:`to_uint8`); returns its shape."""
    from PIL import Image

    from ..io import atomic_write

    arr = to_uint8(response)
    atomic_write(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))
    return arr.shape


def save_filter_bank(
    image: np.ndarray, path: str, boundary: str = "mirror", cols: int = 4, dpi: int = 100
) -> tuple[int, int]:
    """One labelled panel per filter response (with its colour bar) in a grid PNG; returns (W, H) pixels.

    The first panel is the input image. Uses matplotlib's non-interactive Agg canvas (no display).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..io import atomic_write

    x = _check_image(image)
    if x.ndim == 3:
        raise DataError(f"filter bank expects a grey (H, W) image, got shape {x.shape}")
    panels = {"input": x, **filter_bank(x, boundary)}
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.0 * cols, 3.6 * rows), dpi=dpi)
    FigureCanvasAgg(fig)
    # Fixed margins instead of a layout engine: constrained layout measured ~3 s on 16 panels.
    axes = fig.subplots(
        rows,
        cols,
        squeeze=False,
        gridspec_kw={"left": 0.01, "right": 0.97, "bottom": 0.02, "top": 0.95, "wspace": 0.15, "hspace": 0.2},
    ).ravel()
    for ax, (title, resp) in zip(axes, panels.items(), strict=False):
        im = ax.imshow(resp, cmap="gray")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi))
    w, h = fig.get_size_inches() * dpi
    return round(w), round(h)
