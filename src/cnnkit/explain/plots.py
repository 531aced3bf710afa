"""Figures of :mod:`cnnkit.explain`, made to be read by a person: titles, class names, colour bars.

Every ``plot_*`` function takes plain tensors/lists, writes a PNG atomically and returns its path.
Images are ``C x H x W`` tensors in [0, 1] (1 or 3 channels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

DPI = 100


def _save(fig: plt.Figure, path: str | Path) -> Path:
    from ..io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=DPI, bbox_inches="tight"))
    plt.close(fig)
    return path


def _np_image(img: torch.Tensor) -> np.ndarray:
    """``C x H x W`` [0, 1] tensor -> array imshow understands (H x W for gray)."""
    a = img.detach().float().cpu().clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def show_image(ax: plt.Axes, img: torch.Tensor, title: str = "") -> None:
    """Draw a [0, 1] image (gray colormap for one channel) without ticks."""
    ax.imshow(_np_image(img), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def _gray(img: torch.Tensor) -> np.ndarray:
    a = img.detach().float().cpu().clamp(0, 1)
    return a.mean(0).numpy()


def _topk_bars(ax: plt.Axes, top: Sequence[tuple[str, float]], highlight: str | None = None,
               title: str = "Top-5 predictions") -> None:
    """Horizontal bars of (class, probability), best at the top, the explained class highlighted."""
    names = [c for c, _ in top][::-1]
    probs = [100 * p for _, p in top][::-1]
    colors = ["tab:orange" if c == highlight else "tab:blue" for c in names]
    bars = ax.barh(range(len(names)), probs, color=colors)
    ax.set_yticks(range(len(names)), [_short(n) for n in names])
    ax.set_xlim(0, 118)  # room for the value labels
    ax.set_xlabel("probability (%)")
    for b, p in zip(bars, probs, strict=True):
        label = f"{p:.1f}%" if p >= 0.05 or p == 0 else "<0.1%"
        ax.text(b.get_width() + 1.5, b.get_y() + b.get_height() / 2, label, va="center", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)


def _short(name: str, n: int = 18) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


METHOD_TITLES = {
    "saliency": "Saliency |∂score/∂pixel|",
    "gradcam": "Grad-CAM",
    "guided-backprop": "Guided backpropagation",
    "deconvnet": "Deconvnet (Zeiler & Fergus)",
    "occlusion": "Occlusion (score drop)",
    "integrated-gradients": "Integrated gradients",
}


def plot_attribution(image: torch.Tensor, heat: torch.Tensor, top: Sequence[tuple[str, float]], method: str,
                     target_name: str, path: str | Path, signed: bool = False, layer: str | None = None,
                     title: str = "") -> Path:
    """Input | heatmap alone | heatmap over the image | top-5 bar chart, with colour bars."""
    heat_np = heat.detach().float().cpu().numpy()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1.15, 1.15, 1.1]})
    show_image(axes[0], image, "Input")
    if signed:
        lim = float(np.abs(heat_np).max()) or 1.0
        kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
        label = "attribution (red: for the class, blue: against)"
    else:
        kw = {"cmap": "inferno", "vmin": 0, "vmax": float(heat_np.max()) or 1.0}
        label = "attribution (brighter = more important)"
    name = METHOD_TITLES.get(method, method) + (f"\nlayer {layer}" if layer else "")
    im = axes[1].imshow(heat_np, interpolation="nearest", **kw)
    axes[1].set_title(name, fontsize=10)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04).set_label(label, fontsize=7)
    axes[2].imshow(_gray(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ov = {**kw, "cmap": "jet" if not signed else kw["cmap"]}
    im2 = axes[2].imshow(heat_np, alpha=0.5, interpolation="bilinear", **ov)
    axes[2].set_title(f"Overlay: where the model looks\nfor class '{_short(target_name)}'", fontsize=10)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    fig.colorbar(im2, ax=axes[2], fraction=0.046, pad=0.04)
    _topk_bars(axes[3], top, highlight=target_name)
    fig.suptitle(title or f"{METHOD_TITLES.get(method, method)} for class '{target_name}'", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def plot_filters(weights: torch.Tensor, path: str | Path, layer: str = "", gabor: Sequence[tuple[str, torch.Tensor]] = (),
                 max_filters: int = 64, title: str = "") -> Path:
    """Convolution kernels as a grid (RGB when they read 3 channels), optionally beside a Gabor bank.

    One shared, zero-centred scale for the whole layer, so strong and weak filters compare:
    for gray kernels a red/blue colour bar (red positive); for RGB kernels 0 is mid-gray.
    Kernels reading more than 3 channels are shown per input channel (first 8 in and out).
    """
    w = weights.detach().float().cpu()
    out_c, in_c, kh, kw = w.shape
    lim = float(w.abs().max()) or 1.0
    if in_c in (1, 3):
        tiles = [(f"#{i}", w[i]) for i in range(min(out_c, max_filters))]
        cols = math.ceil(math.sqrt(len(tiles)))
        rows = math.ceil(len(tiles) / cols)
    else:
        no, ni = min(out_c, 8), min(in_c, 8)
        tiles = [(f"{o}←{i}", w[o, i : i + 1]) for o in range(no) for i in range(ni)]
        rows, cols = no, ni
    gcols = 4 if gabor else 0
    grows = math.ceil(len(gabor) / gcols) if gabor else 0
    nrows = max(rows, grows)
    tile_in = 0.9 if kh < 8 else 1.2
    fig = plt.figure(figsize=(max(5.0, tile_in * (cols + gcols + (0.6 if gabor else 0)) + 1.4), tile_in * nrows + 1.6),
                     layout="constrained")  # fmt: skip
    ratios = [1] * cols + ([0.6] + [1] * gcols if gabor else [])
    gs = fig.add_gridspec(nrows, len(ratios), width_ratios=ratios)
    learnt = []
    im = None
    for t, (name, k) in enumerate(tiles):
        ax = fig.add_subplot(gs[t // cols, t % cols])
        learnt.append(ax)
        if k.shape[0] == 3:
            ax.imshow(np.transpose((k / (2 * lim) + 0.5).clamp(0, 1).numpy(), (1, 2, 0)), interpolation="nearest")
        else:
            im = ax.imshow(k[0].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=7)
    if im is not None:
        cb = fig.colorbar(im, ax=learnt, location="bottom", shrink=0.7, aspect=30)
        cb.set_label("weight (red +, blue -; one scale for the layer)", fontsize=8)
    elif in_c == 3:
        learnt[-1].set_xlabel(f"RGB kernels: mid-gray = 0, full colour = ±{lim:.2f}", fontsize=8)
    for t, (name, k) in enumerate(gabor):
        ax = fig.add_subplot(gs[t // gcols, cols + 1 + t % gcols])
        glim = float(k.abs().max()) or 1.0
        ax.imshow(k.numpy(), cmap="RdBu_r", vmin=-glim, vmax=glim, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=7)
    head = title or f"Learnt filters of {layer} ({out_c} x {in_c} x {kh} x {kw})"
    if in_c not in (1, 3) and not title:
        head += f"\nrows: output channels 0-{rows - 1}, columns: input channels 0-{cols - 1}"
    if gabor:
        head += "   |   right: Gabor filters (lecture formula; θ orientation, f cycles/px)"
    fig.suptitle(head, fontsize=10)
    return _save(fig, path)


def plot_feature_maps(image: torch.Tensor, maps: torch.Tensor, layer: str, path: str | Path, max_maps: int = 32,
                      title: str = "") -> Path:
    """The input and the feature maps of one layer (first ``max_maps`` channels) on one shared colour scale."""
    m = maps.detach().float().cpu()
    if m.ndim == 1:  # a dense layer: show the activation vector as bars
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 3]})
        show_image(a0, image, "Input")
        a1.bar(range(len(m)), m.numpy())
        a1.set(xlabel="unit", ylabel="activation", title=title or f"Activations of {layer} ({len(m)} units)")
        fig.tight_layout()
        return _save(fig, path)
    n = min(len(m), max_maps)
    cols = min(8, n)
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(1.6 * (cols + max(1.0, min(rows, 3))) + 1.0, 1.65 * rows + 1.0))
    # The input about as tall as the grid of maps (at least one map wide).
    gs = fig.add_gridspec(rows, cols + 2, width_ratios=[max(1.0, min(rows, 3)), 0.15] + [1] * cols)
    show_image(fig.add_subplot(gs[:, 0]), image, "Input")
    vmin, vmax = float(m[:n].min()), float(m[:n].max())
    im = None
    for i in range(n):
        ax = fig.add_subplot(gs[i // cols, 2 + i % cols])
        im = ax.imshow(m[i].numpy(), cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"map {i}  max {float(m[i].max()):.2g}", fontsize=7)
    fig.colorbar(im, ax=fig.axes[1:], fraction=0.02, pad=0.01).set_label("activation", fontsize=8)
    shown = f"first {n} of {len(m)}" if n < len(m) else f"{n}"
    fig.suptitle(title or f"Feature maps of {layer}: {shown} maps of {m.shape[-2]}x{m.shape[-1]}, one colour scale",
                 fontsize=12)  # fmt: skip
    return _save(fig, path)


def plot_top_activations(images: torch.Tensor, boxes: Sequence[tuple[int, int, int, int]], scores: Sequence[float],
                         labels: Sequence[str], layer: str, unit: int, path: str | Path,
                         rf_size: tuple[float, float] | None = None, title: str = "") -> Path:
    """Top row: the images that excite the unit most (receptive field boxed); bottom row: those patches."""
    k = len(images)
    fig, axes = plt.subplots(2, k, figsize=(1.5 * k + 0.6, 3.7), squeeze=False)
    for i in range(k):
        img = images[i]
        top_, left, bot, right = boxes[i]
        show_image(axes[0, i], img, f"class {_short(labels[i], 10)}\nactivation {scores[i]:.2f}")
        axes[0, i].add_patch(Rectangle((left - 0.5, top_ - 0.5), right - left, bot - top_, fill=False, edgecolor="red", lw=1.5))
        show_image(axes[1, i], img[:, top_:bot, left:right])
    axes[0, 0].set_ylabel("image\n(red: receptive field)", fontsize=8)
    axes[1, 0].set_ylabel("patch", fontsize=8)
    rf = f", receptive field {rf_size[0]:.0f}x{rf_size[1]:.0f} px" if rf_size else ""
    fig.suptitle(title or f"Images that excite unit {unit} of {layer} most{rf}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def grid_shape(n: int, max_cols: int = 5) -> tuple[int, int]:
    """Rows and columns for ``n`` tiles with as few empty cells as the row count allows (7 -> 2 x 4,
    not 2 x 5 with three blanks)."""
    n = max(n, 1)
    rows = math.ceil(n / max_cols)
    return rows, math.ceil(n / rows)


def plot_class_visualisations(images: Sequence[torch.Tensor], names: Sequence[str], probs: Sequence[float],
                              path: str | Path, title: str = "") -> Path:
    """A grid of synthesised class images, each titled with its class and the model's probability.

    The grid is balanced (:func:`grid_shape`) and a short last row is centred; the title wraps to the
    figure's width, so one class does not sit in the middle of a page-wide strip of white.
    """
    import textwrap

    n = len(images)
    rows, cols = grid_shape(n, 5 if n <= 20 else 8)
    width = max(2.2 * cols, 3.2)
    fig = plt.figure(figsize=(width, 2.45 * rows + 0.6), layout="constrained")
    # Two grid columns per tile: a short last row can then start half a tile in and sit centred.
    grid = fig.add_gridspec(rows, 2 * cols)
    for i, (img, name, p) in enumerate(zip(images, names, probs, strict=False)):
        r, c = divmod(i, cols)
        left = cols - (n - r * cols) if r == rows - 1 and n % cols else 0
        ax = fig.add_subplot(grid[r, left + 2 * c : left + 2 * c + 2])
        show_image(ax, img, f"class '{_short(name, 14)}'\np = {100 * p:.1f}%")
    text = title or "Class model visualisation (gradient ascent on the class score)"
    fig.suptitle(textwrap.fill(text, max(24, int(width * 72 / (0.55 * 11)))), fontsize=11)
    return _save(fig, path)


def plot_style_transfer(content: torch.Tensor, style: torch.Tensor, result: torch.Tensor,
                        history: Sequence[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Content | style | result | style and content loss per step (log scale)."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1, 1, 1, 1.3]})
    show_image(axes[0], content, "Content")
    show_image(axes[1], style, "Style")
    show_image(axes[2], result, "Result")
    for key, label in (("style", "style (Gram) loss"), ("content", "content loss")):
        # Zeros cannot be drawn on a log scale (the content loss starts at 0 from the content image).
        pts = [(h["step"], h[key]) for h in history if h[key] > 0]
        if pts:
            axes[3].semilogy(*zip(*pts, strict=True), label=label)
    axes[3].set(xlabel="step", ylabel="relative loss", title="Losses")
    axes[3].grid(alpha=0.3, which="both")
    if axes[3].get_legend_handles_labels()[0]:
        axes[3].legend(fontsize=8)
    s0, s1 = history[0]["style"], history[-1]["style"]
    fig.suptitle(title or f"Style transfer: style loss {s0:.3g} → {s1:.3g} ({s0 / max(s1, 1e-12):.0f}x lower)",
                 fontsize=12)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)


def plot_adversarial(original: torch.Tensor, adversarial: torch.Tensor, orig_pred: tuple[str, float],
                     adv_pred: tuple[str, float], method: str, eps: float, path: str | Path,
                     true_name: str | None = None, target_name: str | None = None, title: str = "") -> Path:
    """Original | adversarial | perturbation (amplified, with a colour bar in grey levels)."""
    diff = (adversarial - original).detach().float().cpu()
    d = diff.mean(0).numpy() if diff.shape[0] > 1 else diff[0].numpy()
    lim = max(float(np.abs(d).max()), 1e-8)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    known = f" (true: {true_name})" if true_name is not None else ""
    show_image(axes[0], original, f"Original{known}\npredicted '{orig_pred[0]}' {100 * orig_pred[1]:.1f}%")
    fooled = "FOOLED: " if adv_pred[0] != orig_pred[0] else "not fooled: "
    show_image(axes[1], adversarial, f"Adversarial ({fooled.strip(': ')})\npredicted '{adv_pred[0]}' {100 * adv_pred[1]:.1f}%")
    im = axes[2].imshow(d * 255, cmap="RdBu_r", vmin=-lim * 255, vmax=lim * 255, interpolation="nearest")
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    axes[2].set_title(f"Perturbation (adversarial - original), amplified:\ncolours span ±{255 * lim:.1f}/255", fontsize=10)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04).set_label("change in grey levels (of 255)", fontsize=8)
    tgt = f", target '{target_name}'" if target_name is not None else ""
    fig.suptitle(title or f"{method.upper()} attack, eps = {eps:.3g} ({255 * eps:.1f}/255){tgt}", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def plot_robustness(curves: Sequence, path: str | Path, chance: float | None = None, title: str = "") -> Path:
    """Accuracy (%) against eps (in grey levels of 255) for one or more :class:`RobustnessCurve`."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for ci, c in enumerate(curves):
        x = [255 * e for e in c.eps]
        y = [100 * a for a in c.accuracy]
        (line,) = ax.plot(x, y, "o-", label=f"{c.method.upper()} (n = {c.n})")
        # First curve's values above its points, the second's below, so close curves stay readable.
        dy = 6 if ci % 2 == 0 else -13
        for xi, yi in zip(x, y, strict=True):
            ax.annotate(f"{yi:.1f}%", (xi, yi), textcoords="offset points", xytext=(4, dy), fontsize=7,
                        color=line.get_color())  # fmt: skip
    if chance is not None:
        ax.axhline(100 * chance, color="gray", ls="--", lw=1, label=f"chance ({100 * chance:.0f}%)")
    ax.set(xlabel="eps (grey levels of 255; pixels in [0, 1])", ylabel="accuracy (%)", ylim=(0, 108))
    ax.margins(x=0.08)  # room for the last point's label
    ax.set_title(title or "Accuracy under adversarial attack", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
