"""Figures of the evaluation report (confusion matrix, PR curves, calibration, top losses, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402

# Training curves are drawn by the engine (engine/curves.py): training writes curves.png and the
# engine must not import this layer above it.
from ..engine.curves import plot_curves  # noqa: E402,F401

# --- evaluation figures -------------------------------------------------------------------------
# Each takes plain arrays (no run or model), so tests and notebooks can call them directly.


def _save(fig: Any, path: str | Path) -> Path:
    from ..io import atomic_write

    # No "Software" text chunk: the PNG holds pixels only (and the report no foreign URL).
    atomic_write(path, lambda p: fig.savefig(p, format="png", metadata={"Software": None}))
    plt.close(fig)
    return Path(path)


def _tick_font(k: int) -> float:
    return 11 if k <= 12 else 8 if k <= 30 else 5 if k <= 60 else 3


def plot_confusion(cm: Any, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Confusion matrix as counts and row-normalised (recall per true class), side by side."""
    import numpy as np

    cm = np.asarray(cm)
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    side = min(max(4.3, 0.43 * k), 14)
    # 100 dpi: at 10 classes the figure is about 1110 px wide, the report's column, so it shows unscaled.
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 2.5, side + 1), dpi=100)
    for ax, mat, name, fmt in ((axes[0], cm, "counts", "d"), (axes[1], norm, "row-normalised (recall)", ".2f")):
        im = ax.imshow(mat, cmap="Blues", vmin=0, vmax=None if fmt == "d" else 1, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("images" if fmt == "d" else "fraction of the true class")
        ax.set_xticks(range(k), classes, rotation=90 if k > 12 else 45, ha="center" if k > 12 else "right",
                      fontsize=_tick_font(k))  # fmt: skip
        ax.set_yticks(range(k), classes, fontsize=_tick_font(k))
        ax.set(xlabel="predicted class", ylabel="true class", title=f"Confusion matrix: {name}")
        if k <= 20:  # numbers in the cells while they stay legible
            hi = mat.max() if mat.size else 0
            for i in range(k):
                for j in range(k):
                    if mat[i, j]:
                        ax.text(j, i, format(mat[i, j], fmt), ha="center", va="center", fontsize=8 if k > 12 else 10,
                                color="white" if mat[i, j] > 0.6 * hi else "black")  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def pr_zoom(curves: list[tuple[Any, Any]]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The recall and precision ranges where the curves differ, or ``None`` when a close-up adds nothing.

    Only the part of a curve up to its full recall counts (beyond it, lower thresholds only add false
    positives at constant recall). The box starts a little left of the last recall any class reaches at
    precision 1 and a little below the lowest precision any class falls to; on near-perfect models it is
    a small corner of the unit square, where the full view shows flat lines on top of each other.
    """
    import numpy as np

    x0, y0 = 1.0, 1.0
    for precision, recall in curves:
        p, r = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
        if len(r) == 0 or np.isnan(r).all():
            continue
        end = int(np.argmax(r >= r.max())) + 1  # up to the first threshold with full recall
        keep = r[:end] > 0  # thresholds above every positive add no area (and no visible step)
        p, r = p[:end][keep], r[:end][keep]
        if not len(r):
            continue
        y0 = min(y0, float(np.nanmin(p)))
        below = np.flatnonzero(p < 1)
        if len(below):
            i = below[0]
            x0 = min(x0, float(r[i - 1]) if i > 0 else 0.0)  # the last recall still at precision 1
    if y0 >= 1.0:
        return None  # every class perfectly ranked: nothing to zoom into
    if x0 < 0.35 and y0 < 0.35:
        return None  # the curves already use most of the square
    pad_x, pad_y = max(0.1 * (1 - x0), 0.004), max(0.1 * (1 - y0), 0.004)
    return (max(0.0, x0 - pad_x), 1 + pad_x / 2), (max(0.0, y0 - pad_y), 1 + pad_y / 2)


def plot_pr_curves(curves: list[tuple[Any, Any]], ap: list[float], classes: list[str], path: str | Path,
                   title: str = "") -> Path:  # fmt: skip
    """One-vs-rest precision-recall curve of every class, AP in the legend, mAP in the title.

    Next to the full view, a close-up of the region where the curves differ (:func:`pr_zoom`): a model
    at 99% draws every curve along the top and right edges of the full square.
    """
    import numpy as np

    k = len(classes)
    zoom = pr_zoom(curves)
    with plt.rc_context({"font.size": 11, "axes.titlesize": 12}):
        # At most 1120 px wide: the report (and a laptop screen) shows it unscaled.
        fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(11.2 if zoom else 7.5, 5.6), dpi=100, squeeze=False,
                                 layout="constrained")  # fmt: skip
        cmap = plt.get_cmap("tab10" if k <= 10 else "tab20")
        labelled = set(range(k)) if k <= 20 else set(np.argsort(np.nan_to_num(ap, nan=2.0))[:8].tolist())
        for ax in axes[0]:
            for c, (precision, recall) in enumerate(curves):
                if len(recall) == 0 or np.isnan(recall).all():
                    continue
                # Start the step curve at recall 0 with the first precision, as the AP sum does.
                r, p = np.r_[0.0, recall], np.r_[precision[:1], precision]
                if c in labelled:
                    ax.step(r, p, where="pre", lw=1.6, color=cmap(c % cmap.N), label=f"{classes[c]} (AP {ap[c]:.4f})",
                            alpha=0.85)  # fmt: skip
                else:
                    ax.step(r, p, where="pre", lw=0.6, color="0.7")
            ax.set(xlabel="recall  TP / (TP + FN)", ylabel="precision  TP / (TP + FP)")
            ax.grid(alpha=0.3)
        m = float(np.nanmean(ap)) if len(ap) else float("nan")
        full = axes[0, 0]
        full.set(xlim=(0, 1.01), ylim=(0, 1.02), title="All thresholds")
        if zoom:
            (x0, x1), (y0, y1) = zoom
            close = axes[0, 1]
            close.set(xlim=(x0, x1), ylim=(y0, y1), title="Close-up: where the classes differ")
            # The close-up's box drawn on the full view, so the two read together.
            full.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ls="--", lw=1.2, color="0.25"))
        # The legend beside the axes: on a near-perfect model every corner of them holds a curve.
        fig.legend(*full.get_legend_handles_labels(), loc="outside right center", fontsize=9 if k > 10 else 10,
                   ncol=1 if k <= 12 else 2, title="class (AP)" if k <= 20 else "8 lowest AP (others grey)")  # fmt: skip
        fig.suptitle((title + "\n" if title else "") + f"One-vs-rest precision-recall curves (mAP {m:.4f})")
    return _save(fig, path)


def plot_reliability(cal: Any, path: str | Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the number of images per bin."""
    import numpy as np

    edges = np.asarray(cal.edges)
    width = np.diff(edges)
    centres = edges[:-1] + width / 2
    used = np.asarray(cal.count) > 0
    # 650 px wide at 100 dpi: the report shows it unscaled beside its explanation.
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6.5, 7.6), dpi=100, height_ratios=[3, 1.2], sharex=True)
    acc = np.where(used, cal.accuracy, 0.0)
    conf = np.where(used, cal.confidence, 0.0)
    a1.bar(centres[used], acc[used], width=width[used], edgecolor="black", color="#4c72b0", label="accuracy of the bin")
    # The gap is drawn unfilled over the accuracy bar, so under-confidence (conf < acc) stays visible too.
    lo, gap = np.minimum(acc, conf), np.abs(conf - acc)
    a1.bar(centres[used], gap[used], bottom=lo[used], width=width[used], facecolor="none", edgecolor="#c44e52",
           hatch="//", lw=1.2, label="gap |accuracy - confidence|")  # fmt: skip
    a1.plot(centres[used], conf[used], "_", color="black", ms=14, mew=2.5, label="mean confidence of the bin")
    a1.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    a1.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=(title + "\n" if title else "") + f"Reliability diagram (ECE {cal.ece:.4f}, MCE {cal.mce:.4f})")  # fmt: skip
    # The legend goes under the figure: the bars may fill any corner of the axes.
    fig.legend(*a1.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=10, frameon=False)
    a1.grid(alpha=0.3)
    a2.bar(centres, cal.count, width=width, color="0.5", edgecolor="black")
    for x, c in zip(centres, cal.count, strict=True):
        if c:
            a2.text(x, c, str(int(c)), ha="center", va="bottom", fontsize=9)
    a2.set(xlabel="confidence (top probability)", ylabel="images", title="Images per confidence bin")
    if np.asarray(cal.count).max(initial=0) > 0:
        a2.set_yscale("symlog")  # most images sit in the top bin; a log axis keeps the rest visible
        a2.set_ylim(0, np.asarray(cal.count).max() * 4)
    a2.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, path)


def _short_id(name: str, n: int = 16) -> str:
    """An id or class name that fits a thumbnail's width: the end of a long one is the part that differs."""
    return name if len(name) <= n else "…" + name[-(n - 1):]


def plot_top_losses(images: Any, rows: list[dict[str, Any]], path: str | Path, title: str = "",
                    cols: int = 8) -> Path:  # fmt: skip
    """Grid of the images with the highest loss: true class, prediction and its probability (red = wrong)."""
    import numpy as np

    n = max(len(rows), 1)
    cols = min(cols, n)
    nrows = -(-n // cols)
    # 1.375 in per thumbnail at 100 dpi: 8 columns are 1110 px, within the report's width, so 9.5 pt stays 13 px.
    fig, axes = plt.subplots(nrows, cols, figsize=(1.375 * cols + 0.1, 2.3 * nrows + 0.7), dpi=100, squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, r in zip(axes.flat, images, rows, strict=False):
        a = np.asarray(img)
        if a.shape[0] == 1:
            ax.imshow(a[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(np.transpose(a[:3], (1, 2, 0)), interpolation="nearest")
        wrong = r["true"] != r["pred"]
        ax.set_title(f"{_short_id(str(r['id']))}\ntrue {_short_id(str(r['true']), 10)}\n"
                     f"pred {_short_id(str(r['pred']), 10)} p={r['p_pred']:.2f}\np(true)={r['p_true']:.2f}",
                     fontsize=9.5, color="#b00020" if wrong else "black",
                     fontweight="bold" if wrong else "normal")  # fmt: skip
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center")
    fig.suptitle((title + "\n" if title else "") + "Top losses: -log p(true) highest first (red = misclassified)",
                 fontsize=12)  # fmt: skip
    return _save(fig, path)


def plot_accuracy_vs(rows: list[dict[str, Any]], x_key: str, path: str | Path, xlabel: str, title: str) -> Path:
    """Scatter of top-1 accuracy against a cost (MACs or parameters), one labelled point per run.

    Marker area is linear in log10(parameters) over the plotted range (a size legend states the
    scale); runs at the same spot share one label ("demo, recipe") instead of printing over each other.
    """
    import numpy as np

    pts = [r for r in rows if r.get(x_key) and r.get("acc") is not None and not np.isnan(r["acc"])]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    cmap = plt.get_cmap("tab10")
    models = sorted({r["model"] for r in pts})
    area = _param_area([r.get("params") or 1 for r in pts])
    for r in sorted(pts, key=lambda r: -area(r.get("params") or 1)):  # small markers drawn over big ones
        c = cmap(models.index(r["model"]) % 10)
        ax.scatter(r[x_key], 100 * r["acc"], s=area(r.get("params") or 1), color=c, edgecolor="black", zorder=3)
    if pts:
        ax.set_xscale("log")
        lo, hi = min(r[x_key] for r in pts), max(r[x_key] for r in pts)
        ax.set_xlim(lo / 2, hi * 3)  # room for the labels right of the points
        ax.margins(y=0.12)
        handles = [ax.scatter([], [], color=cmap(i % 10), edgecolor="black", label=m) for i, m in enumerate(models)]
        # Both legends right of the axes: inside, they covered points and labels.
        first = ax.legend(handles=handles, title="model", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.add_artist(first)  # a second legend (sizes) would otherwise replace it
        sizes = sorted({min(r.get("params") or 1 for r in pts), max(r.get("params") or 1 for r in pts)})
        ax.legend(handles=[ax.scatter([], [], s=area(n), color="lightgrey", edgecolor="black", label=_short_count(n))
                           for n in sizes], title="parameters\n(area ∝ log)", fontsize=8, title_fontsize=8,
                  loc="lower left", bbox_to_anchor=(1.01, 0), labelspacing=1.3, borderpad=0.9)  # fmt: skip
    ax.set(xlabel=xlabel + " (log scale)", ylabel="top-1 accuracy (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _label_points(ax, [(r[x_key], 100 * r["acc"], str(r["name"]), area(r.get("params") or 1)) for r in pts])
    return _save(fig, path)


def _param_area(params: list[int]) -> Any:
    """Marker area (points^2) linear in log10(parameters), spread over at least one decade.

    An absolute log scale would draw 61k and 269k parameters nearly alike; mapping the plotted
    range onto 40..400 makes them visibly differ without a 25M-parameter model filling the chart.
    """
    import math

    logs = [math.log10(max(n, 1)) for n in params] or [0.0]
    mid, half = (min(logs) + max(logs)) / 2, max((max(logs) - min(logs)) / 2, 0.5)
    return lambda n: 40 + 360 * (math.log10(max(n, 1)) - (mid - half)) / (2 * half)


def _short_count(n: int) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else str(n)


def _label_points(ax: Any, pts: list[tuple[float, float, str, float]]) -> None:
    """Name each (x, y, name, marker area) point; points within a few pixels share one label.

    Labels overlap neither each other nor the markers, and stay inside the axes where they can.

    Hand-written rather than adjustText (not a dependency): a comparison has a handful of runs,
    so merging coincident points and nudging each label to a free spot beside its marker is enough.
    """
    from matplotlib.transforms import Bbox

    to_px = ax.transData.transform
    px_per_pt = ax.figure.dpi / 72
    groups: list[list[Any]] = []  # [pixel position, names, largest marker radius in points]
    for x, y, name, s in sorted(pts, key=lambda p: (-p[1], p[0], p[2])):  # top to bottom, then left to right
        xy, r = to_px((x, y)), s**0.5 / 2  # scatter's s is the marker's diameter squared, in points
        near = next((g for g in groups if abs(g[0] - xy).max() <= 6), None)  # 6 px: the markers cover each other
        if near is None:
            groups.append([xy, [name], r])
        else:
            near[1].append(name)
            near[2] = max(near[2], r)
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = [Bbox.from_extents(*(xy - r * px_per_pt), *(xy + r * px_per_pt)) for xy, _, r in groups]
    for xy, names, r in groups:
        x, y = ax.transData.inverted().transform(xy)
        t = ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(r + 3, 0), fontsize=8,
                        va="center", zorder=4)  # fmt: skip
        # Right of the point, else left of it; then a line higher or lower, further each time, until it is
        # clear of the other labels and markers and inside the frame.
        lines = (0, *(k * d for k in range(1, 16) for d in (1, -1)))
        for dy, side in ((10 * k, side) for k in lines for side in (1, -1)):
            t.set_position(((r + 3) * side, dy))
            t.set_horizontalalignment("left" if side > 0 else "right")
            box = t.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(b) for b in placed):
                break
        placed.append(box)
