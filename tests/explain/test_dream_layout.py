"""The dream figure has no blank strips: a balanced grid, a centred last row, a title that wraps."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import cnnkit.explain.plots as plots
from cnnkit.explain.plots import grid_shape, plot_class_visualisations

LONG = "What the network thinks each class looks like (150 steps of gradient ascent)"


@pytest.mark.parametrize(("n", "shape"), [(1, (1, 1)), (3, (1, 3)), (7, (2, 4)), (10, (2, 5)), (12, (3, 4))])
def test_grid_shape_leaves_at_most_one_cell_per_row_empty(n, shape):
    rows, cols = grid_shape(n)
    assert (rows, cols) == shape and rows * cols - n < rows


def _draw(tmp_path, monkeypatch, n):
    figs = []
    save = plots._save

    def keep(fig, path):
        figs.append([(ax.get_position().x0 + ax.get_position().x1) / 2 for ax in fig.axes])
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    images = [torch.rand(1, 32, 32) for _ in range(n)]
    path = plot_class_visualisations(
        images, [str(i) for i in range(n)], [0.9] * n, tmp_path / f"d{n}.png", LONG
    )
    return figs[0], path


def test_short_last_row_is_centred(tmp_path, monkeypatch):
    centres, _ = _draw(tmp_path, monkeypatch, 7)
    assert len(centres) == 7
    last = centres[4:]  # 2 x 4 grid: three tiles in the second row
    assert sum(last) / len(last) == pytest.approx(0.5, abs=0.03)
    assert sum(centres[:4]) / 4 == pytest.approx(0.5, abs=0.03)


def test_one_class_is_not_a_tile_in_a_page_wide_strip(tmp_path, monkeypatch):
    _, path = _draw(tmp_path, monkeypatch, 1)
    with Image.open(path) as im:
        w, h = im.size
    # The long title wraps to the tile's width instead of widening the figure (it was 600 x 270 px).
    assert w < 1.3 * h and w < 400
