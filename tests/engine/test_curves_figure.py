"""curves.png: a log-scale loss axis, the best epoch marked where the loop keeps it, a learning-rate panel."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from cnnkit.engine.curves import best_epoch_of, curves_figure, plot_curves


def _rows(val_loss, val_acc=None, lr=None, train_loss=None):
    n = len(val_loss)
    return [{"epoch": i + 1, "train_loss": (train_loss or val_loss)[i] * 1.1, "train_acc": 0.5 + i / (4 * n),
             "val_loss": val_loss[i], "val_acc": (val_acc or [0.5] * n)[i], "lr": (lr or [0.1] * n)[i], "time_s": 1.0}
            for i in range(n)]  # fmt: skip


def _axes(fig):
    loss = next(a for a in fig.axes if a.get_title() == "Loss")
    acc = next(a for a in fig.axes if a.get_title() == "Accuracy")
    lr = next((a for a in fig.axes if "learning rate" in a.get_ylabel()), None)
    return loss, acc, lr


def _vlines(ax):
    return [
        ln.get_xdata()[0]
        for ln in ax.get_lines()
        if ln.get_linestyle() == "--" and len(set(ln.get_xdata())) == 1
    ]


def test_spike_does_not_flatten_later_epochs_and_best_epoch_is_marked():
    # One spike at epoch 2 (loss 40), then losses 100x smaller that a linear axis would squash flat.
    val = [2.0, 40.0, 0.5, 0.1, 0.05, 0.02, 0.03, 0.04]
    lr = [1e-3, 1e-2, 1e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3]  # warmup then decay: orders of magnitude
    fig = curves_figure(_rows(val, lr=lr), title="spike")
    loss, _acc, lr_ax = _axes(fig)
    assert loss.get_yscale() == "log"
    lo, hi = loss.get_ylim()
    # On the log axis the late epochs 0.02..0.05 span a visible share of the height (linear: < 0.1%).
    assert (math.log10(0.05) - math.log10(0.02)) / (math.log10(hi) - math.log10(lo)) > 0.1
    assert lr_ax is not None and lr_ax.get_yscale() == "log"
    # The recorded lr of every epoch, as metrics.csv has it.
    assert list(lr_ax.get_lines()[0].get_ydata()) == lr
    assert best_epoch_of(_rows(val)) == 6
    for ax in fig.axes:  # the dashed best-epoch line on every panel
        assert _vlines(ax) == [6]
    stars = [ln for ln in loss.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [6] and list(stars[0].get_ydata()) == [0.02]
    assert "best epoch 6" in fig._suptitle.get_text()
    plt.close(fig)


def test_best_epoch_follows_the_monitor_and_the_loops_tie_rule():
    val_loss = [1.0, 0.5, 0.5, 0.6]
    val_acc = [0.5, 0.8, 0.9, 0.9]
    rows = _rows(val_loss, val_acc)
    # The tie at epoch 3 does not improve: the earlier epoch stays.
    assert best_epoch_of(rows, "val_loss") == 2
    assert best_epoch_of(rows, "val_acc") == 3  # highest accuracy, first of the tie
    no_val = [dict(r, val_loss="", val_acc="") for r in rows]
    assert best_epoch_of(no_val) == 2  # no validation split: the training loss, as the loop monitors it
    fig = curves_figure(rows, best_epoch=4, monitor="val_acc")  # an explicit best epoch wins
    assert all(_vlines(ax) == [4] for ax in fig.axes)
    plt.close(fig)


def test_constant_lr_stays_linear_and_missing_lr_drops_the_panel(tmp_path):
    rows = _rows([1.0, 0.5, 0.25])
    fig = curves_figure(rows)
    assert _axes(fig)[2].get_yscale() == "linear"
    plt.close(fig)
    old = [{k: v for k, v in r.items() if k != "lr"} for r in rows]  # metrics.csv of an old run
    fig = curves_figure(old)
    assert _axes(fig)[2] is None and len(fig.axes) == 2
    plt.close(fig)
    path = plot_curves(rows, tmp_path / "curves.png", title="three epochs")
    with Image.open(path) as im:
        # Drawn for the report's 1124 px column: shown unscaled, so 11 pt text stays about 15 px tall.
        assert 1000 <= im.width <= 1124 and im.height > 500


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_diverged_epoch_does_not_break_the_log_axis(bad):
    fig = curves_figure(_rows([1.0, 0.5, bad, 0.4]))
    assert _axes(fig)[0].get_yscale() == "log" and best_epoch_of(_rows([1.0, 0.5, bad, 0.4])) == 4
    fig.canvas.draw()  # renders without error
    plt.close(fig)


def test_the_legend_says_what_the_training_series_measured():
    """Training loss above validation loss is normal with augmentation and label smoothing: the figure says why."""
    from cnnkit.engine.curves import smoothing_floor, train_series, train_series_label

    # Entropy of the smoothed targets: 0.91 on the true class and 0.01 on each of the nine others.
    assert smoothing_floor(0.1, 10) == pytest.approx(-(0.91 * math.log(0.91) + 9 * 0.01 * math.log(0.01)))
    assert smoothing_floor(0.0, 10) == 0.0
    assert train_series_label("translate=2,flip", 0.1) == "train (augmented, label smoothing 0.1)"
    assert train_series_label("none", 0.0) == "train"
    assert train_series("none", 0.1, "hinge", 10)["train_floor"] is None  # the floor is cross-entropy's
    label = train_series_label("translate=2", 0.1)
    fig = curves_figure(_rows([1.0, 0.4, 0.2], train_loss=[1.5, 0.8, 0.6]), train_label=label,
                        train_floor=smoothing_floor(0.1, 10))  # fmt: skip
    loss, acc, _lr = _axes(fig)
    for ax in (loss, acc):
        assert label in ax.get_legend_handles_labels()[1]
    floor = [ln for ln in loss.get_lines() if ln.get_linestyle() == ":"]
    assert len(floor) == 1 and floor[0].get_ydata()[0] == pytest.approx(0.5003, abs=1e-4)
    assert "lowest possible train loss (0.50)" in loss.get_legend_handles_labels()[1]
    plt.close(fig)
