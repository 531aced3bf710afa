"""PR curves that show differences: a close-up where near-perfect classes differ, none when it adds nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.evaluate.metrics import average_precision, pr_curve
from cnnkit.evaluate.plots import plot_pr_curves, pr_zoom


def _curves(probs, y):
    k = probs.shape[1]
    return [pr_curve(y == c, probs[:, c])[:2] for c in range(k)], [
        average_precision(y == c, probs[:, c]) for c in range(k)
    ]


def _near_perfect(seed=0, n=300, k=4):
    """Correct predictions (top probability 0.6-0.98), except three images of class 1 that class 2 scores
    0.8, among its own images' scores."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    top = 0.6 + 0.38 * rng.random(n)
    probs = np.repeat(((1 - top) / (k - 1))[:, None], k, 1)
    probs[np.arange(n), y] = top
    wrong = np.flatnonzero(y == 1)[:3]
    # Class 2's precision dips in mid-recall, then recovers. Their class-1 score 0.15 stays above every
    # other image's (at most 0.4 / 3), so class 1 itself remains perfectly ranked.
    probs[wrong] = [0.025, 0.15, 0.8, 0.025]
    return probs, y


def test_near_perfect_curves_get_a_close_up_of_the_top_right_corner():
    curves, ap = _curves(*_near_perfect())
    assert min(ap) > 0.9
    (x0, x1), (y0, y1) = pr_zoom(curves)
    # The box holds every point where a curve leaves precision 1 before full recall, and little else.
    assert 0.5 < y0 < 0.99 and x0 < 1 and x1 > 1 and y1 > 1
    for p, r in curves:
        end = int(np.argmax(r >= r.max())) + 1
        assert np.all(p[:end] >= y0)
    # Class 2's dip (three confident false positives) is what the box frames: its lowest precision before
    # full recall sits just above the box's floor, and the box starts left of where it leaves precision 1.
    p2, r2 = curves[2]
    end = int(np.argmax(r2 >= 1)) + 1
    assert y0 < p2[:end].min() < 1 and x0 < r2[np.flatnonzero(p2 < 1)[0]]
    assert x0 > 0.2  # ... and the box is not the whole square


def test_no_close_up_for_perfect_or_poor_models():
    y = np.repeat(np.arange(3), 20)
    perfect = np.eye(3)[y] * 0.9 + 0.05
    assert pr_zoom(_curves(perfect, y)[0]) is None  # every curve is the square's edge
    rng = np.random.default_rng(1)
    noise = rng.dirichlet(np.ones(3), 60)
    assert pr_zoom(_curves(noise, y)[0]) is None  # the curves already fill the square


@pytest.mark.parametrize("near_perfect", [True, False])
def test_plot_has_two_panels_only_when_zoomed(tmp_path, near_perfect):
    probs, y = _near_perfect() if near_perfect else (np.random.default_rng(2).dirichlet(np.ones(4), 200),
                                                    np.random.default_rng(3).integers(0, 4, 200))  # fmt: skip
    curves, ap = _curves(probs, y)
    path = plot_pr_curves(curves, ap, ["a", "b", "c", "d"], tmp_path / "pr.png", title="t")
    with Image.open(path) as im:
        w = im.width
    # Zoomed: full view and close-up side by side, still within the report's 1124 px column.
    assert (1000 < w <= 1124) if near_perfect else (w < 900)
