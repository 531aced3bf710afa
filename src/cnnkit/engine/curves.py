"""Training curves: loss, accuracy and learning rate per epoch, written to the run folder as ``curves.png``.

The loss axis is logarithmic: one early spike (or the first epochs' 2.3) must not flatten every
later epoch into a line at zero. A dashed line marks the epoch the run keeps as best (per its
monitor), and a panel underneath shows the learning rate that each epoch started with.

The training numbers come from augmented images and (with label smoothing) a smoothed loss, the
validation numbers from plain images and the plain loss, so training loss above validation loss is
normal, not a bug: the legend says what the training series measured, and a dotted line marks the
lowest training loss label smoothing allows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402

BEST_COLOR = "#2a7d2e"


def _col(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]


def _has(values: list[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def _plain_log_labels(ax: plt.Axes, values: list[float]) -> None:
    """Tick labels 0.01, 0.1, 1 instead of 10^-2 ..., and labelled minor ticks when the data spans
    less than two decades (otherwise such an axis would show one label or none): every minor tick
    below one decade, the 2s and 5s below two."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    pos = [v for v in values if math.isfinite(v) and v > 0]
    span = max(pos) / min(pos) if pos else math.inf
    if 10 <= span < 100:
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.yaxis.set_minor_formatter(plain if span < 100 else NullFormatter())


def best_epoch_of(rows: list[dict[str, Any]], monitor: str = "val_loss") -> int | None:
    """The epoch the training loop keeps as best: the first with the lowest validation loss (or the
    highest validation accuracy for ``monitor="val_acc"``); the training loss when there is no
    validation split. ``None`` when no epoch has a finite value."""
    val = _col(rows, "val_loss")
    if not _has(val):
        values, lower = _col(rows, "train_loss"), True
    elif monitor.endswith("loss"):
        values, lower = val, True
    else:
        values, lower = _col(rows, "val_acc"), False
    best, best_v = None, None
    for r, v in zip(rows, values, strict=True):
        if not math.isfinite(v):
            continue
        if best_v is None or (v < best_v if lower else v > best_v):  # strict: ties keep the earlier epoch
            best, best_v = int(r["epoch"]), v
    return best


def smoothing_floor(label_smoothing: float, num_classes: int) -> float:
    """The lowest cross-entropy a model can reach against label-smoothed targets: their entropy
    (0.50 for smoothing 0.1 over 10 classes), reached when it predicts exactly the smoothed targets."""
    eps, k = label_smoothing, num_classes
    if eps <= 0 or k < 2:
        return 0.0
    top, rest = 1 - eps + eps / k, eps / k
    return -(top * math.log(top) + (k - 1) * rest * math.log(rest))


def train_series_label(augment: str | None, label_smoothing: float) -> str:
    """The legend entry of the training series: what its numbers were measured on."""
    parts = [] if augment in (None, "", "none") else ["augmented"]
    if label_smoothing > 0:
        parts.append(f"label smoothing {label_smoothing:g}")
    return f"train ({', '.join(parts)})" if parts else "train"


def train_series(augment: str | None, label_smoothing: float, loss: str, classes: int) -> dict[str, Any]:
    """``train_label`` and ``train_floor`` for :func:`plot_curves` from a run's settings. The floor is
    cross-entropy's; other losses (hinge, squared error) smooth differently or not at all."""
    floor = smoothing_floor(label_smoothing, classes) if loss == "cross_entropy" else None
    return {"train_label": train_series_label(augment, label_smoothing), "train_floor": floor}


def curves_figure(rows: list[dict[str, Any]], title: str = "", best_epoch: int | None = None,
                  monitor: str = "val_loss", train_label: str = "train",
                  train_floor: float | None = None) -> plt.Figure:  # fmt: skip
    """The figure of :func:`plot_curves` (loss on a log axis, accuracy, learning rate), unsaved."""
    ep = [int(r["epoch"]) for r in rows]
    if best_epoch is None:
        best_epoch = best_epoch_of(rows, monitor)
    lr = _col(rows, "lr")
    show_lr = _has(lr)
    with plt.rc_context({"font.size": 11, "axes.titlesize": 12, "legend.fontsize": 10}):
        fig = plt.figure(figsize=(11, 7.2 if show_lr else 4.8), dpi=100, layout="constrained")
        grid = fig.add_gridspec(2 if show_lr else 1, 2, height_ratios=[3, 1.35] if show_lr else [1])
        a_loss = fig.add_subplot(grid[0, 0])
        a_acc = fig.add_subplot(grid[0, 1], sharex=a_loss)
        series = ((train_label, "o-", "train_loss", "train_acc"), ("validation", "s-", "val_loss", "val_acc"))
        for label, style, lk, ak in series:
            loss, acc = _col(rows, lk), _col(rows, ak)
            if _has(loss):
                a_loss.plot(ep, loss, style, ms=3.5, label=label)
            if _has(acc):
                a_acc.plot(ep, [100 * v for v in acc], style, ms=3.5, label=label)
        if _has(_col(rows, "train_loss") + _col(rows, "val_loss")):
            # Log scale: late epochs (0.01 vs 0.02) differ as much as early ones (1 vs 2).
            a_loss.set_yscale("log", nonpositive="mask")
            _plain_log_labels(a_loss, _col(rows, "train_loss") + _col(rows, "val_loss"))
        if train_floor and _has(_col(rows, "train_loss")):
            a_loss.axhline(train_floor, color="#1f77b4", ls=":", lw=1.2, zorder=0,
                           label=f"lowest possible train loss ({train_floor:.2f})")  # fmt: skip
        a_loss.set(ylabel="loss (log scale)", title="Loss")
        a_acc.set(ylabel="accuracy (%)", title="Accuracy")
        axes = [a_loss, a_acc]
        if show_lr:
            a_lr = fig.add_subplot(grid[1, :], sharex=a_loss)
            a_lr.plot(ep, lr, "-", color="#8c564b", lw=1.8, marker="." if len(ep) <= 60 else None)
            finite = [v for v in lr if math.isfinite(v) and v > 0]
            # Warmup, step decays and one-cycle span orders of magnitude: a log axis shows each phase.
            if finite and max(finite) / min(finite) > 20:
                a_lr.set_yscale("log")
                _plain_log_labels(a_lr, finite)
            a_lr.set(ylabel="learning rate", title="Learning rate at the start of each epoch")
            axes.append(a_lr)
        axes[-1].set_xlabel("epoch")
        if not show_lr:
            a_acc.set_xlabel("epoch")
        if best_epoch is not None and best_epoch in ep:
            i = ep.index(best_epoch)
            for a in axes:
                a.axvline(best_epoch, color=BEST_COLOR, ls="--", lw=1.3, zorder=0)
            val = _col(rows, "val_loss")[i]
            if math.isfinite(val):
                a_loss.plot([best_epoch], [val], "*", ms=14, color=BEST_COLOR, zorder=5,
                            label=f"best epoch {best_epoch} (val loss {val:.4f})")  # fmt: skip
            else:
                a_loss.plot([], [], "--", color=BEST_COLOR, label=f"best epoch {best_epoch}")
            acc = _col(rows, "val_acc")[i]
            if math.isfinite(acc):
                a_acc.plot([best_epoch], [100 * acc], "*", ms=14, color=BEST_COLOR, zorder=5,
                           label=f"best epoch {best_epoch} ({100 * acc:.2f}%)")  # fmt: skip
        for a in axes:
            a.grid(alpha=0.3, which="major")
            a.grid(alpha=0.12, which="minor")
        for a in (a_loss, a_acc):
            if a.get_legend_handles_labels()[0]:
                a.legend(loc="best")
        if len(ep) <= 20:
            a_loss.set_xticks(ep)  # whole epochs only: a 3-epoch run has no epoch 1.5
        else:
            a_loss.xaxis.get_major_locator().set_params(integer=True)
        if title:
            # Without a validation split the loop keeps the epoch of the lowest training loss.
            watched = monitor if _has(_col(rows, "val_loss")) else "train_loss"
            fig.suptitle(title + (f"  (best epoch {best_epoch}, monitor {watched})" if best_epoch else ""))
    return fig


def plot_curves(rows: list[dict[str, Any]], path: str | Path, title: str = "", best_epoch: int | None = None,
                monitor: str = "val_loss", train_label: str = "train", train_floor: float | None = None) -> Path:  # fmt: skip
    """Loss (log axis), accuracy and learning rate per epoch with the best epoch marked; saved as PNG.

    ``best_epoch`` defaults to the one the training loop keeps for ``monitor`` (:func:`best_epoch_of`);
    ``train_label`` (:func:`train_series_label`) and ``train_floor`` (:func:`smoothing_floor`) say what
    the training series measured.
    """
    from ..io import atomic_write

    fig = curves_figure(rows, title, best_epoch, monitor, train_label, train_floor)
    # No "Software" text chunk: the report embeds the PNG and names no foreign URL.
    atomic_write(path, lambda p: fig.savefig(p, format="png", metadata={"Software": None}))
    plt.close(fig)
    return Path(path)
