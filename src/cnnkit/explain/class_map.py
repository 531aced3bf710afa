"""Class maps: a trained classifier slid over a larger image in one pass (seed 001, "Convs can mimick FC").

:func:`~cnnkit.analyze.convolutionalize.convolutionalize` turns the run's fully connected head into
convolutions, so an image larger than the training size gives a grid of class scores: cell ``(i, j)``
is the network's prediction for the training-size window centred at ``start + stride * (i, j)``.
The stride is the product of the strides of every layer (4 px for LeNet-5: two 2x2 poolings) and the
window is the receptive field of the output (32 px for LeNet-5), both read from :mod:`cnnkit.analyze`.
A finer ``stride`` (a divisor of the network's) runs the network on shifted copies of the image and
interleaves the maps ("shift and stitch", Long et al. 2015).

:func:`read_string` reads a row of characters off a map as LeNet-5's 1998 demo did: keep the most
confident windows, at least ``min_gap`` pixels apart, left to right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ._common import PixelModel, inner

MAX_SIDE = 4096  # pixels: beyond this a class map is a typo (or needs tiling), not a request


@dataclass
class ClassMap:
    """Scores of every class at every window position of one image."""

    probs: torch.Tensor  # K x H' x W' softmax over classes, per cell
    rows: torch.Tensor  # H' pixel coordinates of the cells' window centres
    cols: torch.Tensor  # W'
    stride: tuple[int, int]  # between cells (the network's, or finer with shift and stitch)
    network_stride: tuple[int, int]
    receptive_field: tuple[int, int]  # window seen by one cell

    @property
    def argmax(self) -> torch.Tensor:
        """``H' x W'`` index of the best class per cell."""
        return self.probs.argmax(0)

    @property
    def confidence(self) -> torch.Tensor:
        """``H' x W'`` probability of the best class per cell."""
        return self.probs.max(0).values


def _fcn(model: nn.Module) -> tuple[PixelModel, object]:
    """The convolutionalised network in pixel space, with its geometry (cached on the model)."""
    from ..analyze.convolutionalize import convolutionalize, geometry

    cached = getattr(model, "_cnnkit_class_map", None)
    if cached is not None:
        return cached
    net = inner(model)
    fcn = convolutionalize(net).eval()
    geo = geometry(fcn)
    # The run's normalisation (a PixelModel's), else the model's declared default.
    mean, std = (model.mean.flatten().tolist(), model.std.flatten().tolist()) if isinstance(model, PixelModel) else (
        net.info.mean, net.info.std)  # fmt: skip
    pixel = PixelModel(fcn, mean, std).eval().to(next(net.parameters()).device)
    object.__setattr__(model, "_cnnkit_class_map", (pixel, geo))  # not a submodule: no state-dict entry
    return pixel, geo


def check_stride(stride: int | None, network: tuple[int, int]) -> tuple[int, int]:
    """The map stride to use: the network's by default, or a divisor of it."""
    if stride is None:
        return network
    divisors = [d for d in range(1, max(network) + 1) if network[0] % d == 0 and network[1] % d == 0]
    if stride not in divisors:
        shown = "x".join(map(str, network)) if network[0] != network[1] else str(network[0])
        raise ConfigError(f"--stride {stride} does not divide the network's output stride ({shown} px)",
                          hint=f"use one of {', '.join(map(str, divisors))}: finer strides run the network on "
                          "shifted copies of the image")  # fmt: skip
    return (stride, stride)


def class_map(model: nn.Module, image: torch.Tensor, stride: int | None = None) -> ClassMap:
    """Class probabilities of every training-size window of ``image`` (``C x H x W``, [0, 1]).

    ``model`` is a cnnkit model or its :class:`PixelModel` (the run's normalisation is applied).
    """
    return class_maps(model, image.unsqueeze(0) if image.dim() == 3 else image[:1], stride)[0]


@torch.no_grad()
def class_maps(model: nn.Module, images: torch.Tensor, stride: int | None = None) -> list[ClassMap]:
    """:func:`class_map` of every image of an ``N x C x H x W`` batch (one pass per shift)."""
    pixel, geo = _fcn(model)
    th, tw = pixel.model.train_size
    h, w = images.shape[-2:]
    if h < th or w < tw:
        raise ConfigError(f"the image is {h}x{w} pixels, smaller than the network's {th}x{tw} window",
                          hint="class maps slide the training-size window over a larger image; use `cnnkit predict` "
                          "for one window")  # fmt: skip
    if max(h, w) > MAX_SIDE:
        raise ConfigError(f"the image is {h}x{w} pixels; class maps take at most {MAX_SIDE} per side",
                          hint="downscale or crop the image first")  # fmt: skip
    sy, sx = check_stride(stride, geo.stride)
    jy, jx = geo.stride
    x = images.to(pixel.mean.device, torch.float32)
    fy, fx = jy // sy, jx // sx
    # Shift and stitch: the pass on the image cropped by (dy, dx) gives the cells dy/sy, dy/sy + fy, ...
    # A shift that leaves less than one window (a strip exactly one window high) has no cells.
    maps = {(dy, dx): pixel(x[..., dy:, dx:]).float().softmax(1) for dy in range(0, jy, sy) for dx in range(0, jx, sx)
            if h - dy >= th and w - dx >= tw}  # fmt: skip
    n, k = x.shape[0], next(iter(maps.values())).shape[1]
    ny = max(dy // sy + (m.shape[2] - 1) * fy + 1 for (dy, _), m in maps.items())
    nx = max(dx // sx + (m.shape[3] - 1) * fx + 1 for (_, dx), m in maps.items())
    probs = torch.zeros(n, k, ny, nx, device=x.device)
    filled = torch.zeros(ny, nx, dtype=torch.bool)
    for (dy, dx), m in maps.items():
        r0, c0, hm, wm = dy // sy, dx // sx, m.shape[2], m.shape[3]
        probs[:, :, r0 : r0 + fy * hm : fy, c0 : c0 + fx * wm : fx] = m
        filled[r0 : r0 + fy * hm : fy, c0 : c0 + fx * wm : fx] = True

    def lead(v: torch.Tensor) -> int:  # how many leading True
        return int(v.int().cumprod(0).sum())

    # Keep the rows and columns every shift reached (the last shifts can fall one cell short).
    ny, nx = lead(filled[:, 0]), lead(filled[0])
    ny = lead(filled[:ny, :nx].all(1))
    nx = lead(filled[:ny, :nx].all(0))
    probs = probs[:, :, :ny, :nx]
    rows = geo.start[0] + sy * torch.arange(ny, dtype=torch.float32)
    cols = geo.start[1] + sx * torch.arange(nx, dtype=torch.float32)
    return [ClassMap(p, rows, cols, (sy, sx), geo.stride, geo.receptive_field) for p in probs.cpu()]


def read_string(
    cmap: ClassMap, min_prob: float = 0.5, min_gap: float | None = None
) -> list[tuple[int, float, float]]:
    """Characters read left to right off a class map: ``[(class, column centre in px, probability)]``.

    Each column keeps its most confident cell (any row); then, most confident first, a column is kept
    when its probability reaches ``min_prob`` and it lies at least ``min_gap`` pixels (default 0.6 of
    the receptive field's width) from every column kept before (non-maximum suppression).
    """
    gap = 0.6 * cmap.receptive_field[1] if min_gap is None else min_gap
    conf, best_row = cmap.confidence.max(0)  # per column: the best cell over rows
    cls = cmap.argmax.gather(0, best_row[None])[0]
    kept: list[int] = []
    for j in conf.argsort(descending=True).tolist():
        if conf[j] < min_prob:
            break
        if all(abs(float(cmap.cols[j] - cmap.cols[k])) >= gap for k in kept):
            kept.append(j)
    return [(int(cls[j]), float(cmap.cols[j]), float(conf[j])) for j in sorted(kept)]


def plot_class_map(
    image: torch.Tensor, cmap: ClassMap, classes: list[str], output: str | Path, title: str = ""
) -> Path:
    """The image with the arg-max map over it (a letter per confident cell), and one score map per class."""
    import math

    import matplotlib.pyplot as plt

    from .plots import _np_image, _save

    img = image[0] if image.dim() == 4 else image
    h, w = img.shape[-2:]
    k = cmap.probs.shape[0]
    cols_n = min(k, 5)
    rows_n = math.ceil(k / cols_n)
    aspect = h / w
    fig = plt.figure(figsize=(2.4 * cols_n, 2.4 * cols_n * aspect + 2.4 * rows_n * aspect * 1.15 + 0.8))
    grid = fig.add_gridspec(1 + rows_n, cols_n, height_ratios=[cols_n * 0.9] + [1] * rows_n)
    sy, sx = cmap.stride
    # One row of cells (a strip one window high) is drawn as tall as the window, so it can be seen.
    half_y = cmap.receptive_field[0] / 2 if len(cmap.rows) == 1 else sy / 2
    extent = (float(cmap.cols[0]) - sx / 2, float(cmap.cols[-1]) + sx / 2,
              float(cmap.rows[-1]) + half_y, float(cmap.rows[0]) - half_y)  # fmt: skip
    gray = {"cmap": "gray", "vmin": 0, "vmax": 1, "extent": (-0.5, w - 0.5, h - 0.5, -0.5)}
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(_np_image(img), **gray)
    ax.imshow(cmap.argmax.numpy(), cmap="tab10" if k <= 10 else "tab20", vmin=0, vmax=(10 if k <= 10 else 20) - 1,
              alpha=0.35 * cmap.confidence.numpy(), extent=extent, interpolation="nearest")  # fmt: skip
    if cmap.argmax.numel() <= 1024:  # a label per cell while they stay legible
        for i, y in enumerate(cmap.rows.tolist()):
            for j, xx in enumerate(cmap.cols.tolist()):
                if cmap.confidence[i, j] >= 0.5:
                    ax.text(xx, y, classes[int(cmap.argmax[i, j])], ha="center", va="center", fontsize=7,
                            color="yellow")  # fmt: skip
    rh, rw = cmap.receptive_field  # the window of the first cell, for scale
    ax.add_patch(plt.Rectangle((float(cmap.cols[0]) - rw / 2, float(cmap.rows[0]) - rh / 2), rw, rh, fill=False,
                               edgecolor="cyan", linewidth=1.2, linestyle="--"))  # fmt: skip
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        title or f"arg-max class per window: stride {sx} px, window {rw}x{rh} px (dashed)", fontsize=9
    )
    for c in range(k):
        a = fig.add_subplot(grid[1 + c // cols_n, c % cols_n])
        a.imshow(_np_image(img), **gray)
        a.imshow(cmap.probs[c].numpy(), cmap="magma", vmin=0, vmax=1, alpha=0.75, extent=extent,
                 interpolation="nearest")  # fmt: skip
        a.set_xlim(-0.5, w - 0.5)
        a.set_ylim(h - 0.5, -0.5)
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"P({classes[c]})", fontsize=8)
    fig.tight_layout()
    return _save(fig, output)


@dataclass
class ClassMapResult:
    """What ``cnnkit class-map`` computed for one image file."""

    map: ClassMap
    read: list[tuple[str, float, float]]  # characters read left to right (name, column px, probability)
    classes: list[str]
    image_size: tuple[int, int]
    path: Path


def class_map_file(
    run_dir: str | Path, image: str | Path, output: str | Path, stride: int | None = None, device: str = "auto"
) -> ClassMapResult:
    """``cnnkit class-map``: the class map of an image file (at its own size) under a run's model."""
    from ..data.images import read_image
    from .commands import _load

    run, model = _load(run_dir, device)
    _fcn(model)  # a head that cannot be converted fails before the image is read
    x = read_image(image, int(run.meta.input_size[0]), None).float().div(255.0)
    cmap = class_map(model, x, stride)
    read = [(run.classes[c], col, p) for c, col, p in read_string(cmap)]
    path = plot_class_map(x, cmap, run.classes, output)
    return ClassMapResult(cmap, read, run.classes, (int(x.shape[1]), int(x.shape[2])), path)
