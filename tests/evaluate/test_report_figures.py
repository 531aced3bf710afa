"""report.html shows every figure at a readable size: no embedded PNG is shrunk in a 1280 px window."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image

from cnnkit.evaluate import evaluate_run

# The report's <main> is at most 1180 px wide with 28 px padding on each side: 1124 px for a figure.
COLUMN_PX = 1124


def test_every_figure_fits_the_column_and_the_curves_are_full_width(trained_run):
    evaluate_run(trained_run)
    page = (trained_run / "eval" / "test" / "report.html").read_text()
    figures = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    assert {alt for _, alt in figures} == {"training curves", "confusion matrix", "precision-recall curves",
                                           "reliability diagram", "top losses"}  # fmt: skip
    for data, alt in figures:
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            # Figures are drawn at 100 dpi with text of 9.5 pt or more: unscaled, that is 13 px or more.
            # Wider than the column, the browser would shrink them (the old curves showed 7 px text).
            assert 600 <= im.width <= COLUMN_PX, (alt, im.size)
    # The curves sit in the page's full width, not in half of a two-column grid as before.
    curves_at = page.index('alt="training curves"')
    assert page.rfind('<div class="cols">', 0, curves_at) < page.rfind('<h2 id="training">', 0, curves_at)
    assert "best epoch" in page and "learning rate" in page
