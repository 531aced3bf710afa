"""The retrieval page: failing queries first, every thumbnail labelled, every number explained."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from cnnkit.transfer import retrieve
from cnnkit.transfer.retrieval_page import BAD_MARK, OK_MARK, display_order


def test_display_order_puts_the_worst_failures_first_and_keeps_some_successes():
    precision = np.array([1.0, 0.4, 1.0, 0.8, 0.4, 1.0, 0.9])
    ap = np.array([1.0, 0.5, 1.0, 0.9, 0.3, 1.0, 0.95])
    # Failures by precision then AP (4 before 1: same precision, lower AP), then successes in query order.
    assert display_order(7, precision, ap, 8) == [4, 1, 3, 6, 0, 2, 5]
    assert display_order(7, precision, ap, 4) == [4, 1, 3, 0]  # a quarter of the rows for a success
    assert display_order(7, precision, ap, 1) == [4]  # one row: the worst failure
    assert display_order(3, np.ones(3), np.ones(3), 2) == [0, 1]  # nothing failed
    assert display_order(5, None, None, 3) == [0, 1, 2]  # unlabelled queries keep their order


@pytest.fixture(scope="module")
def pixel_search(tmp_path_factory):
    # Raw pixels: fast (no network) and imperfect (mAP@10 0.947), so there are failures to show.
    out = tmp_path_factory.mktemp("retrieval") / "pixels.png"
    return retrieve(index="digits", features="pixels", k=5, out=out, show=8)


def test_failures_come_first_and_each_row_matches_its_scores(pixel_search):
    r = pixel_search
    assert r.query_precision is not None and len(r.query_precision) == r.metrics["queries"]
    assert r.metrics["precision@5"] == pytest.approx(r.query_precision.mean())
    assert r.metrics["map@5"] == pytest.approx(r.query_ap.mean())
    shown = r.shown
    fails = [i for i in shown if r.query_precision[i] < 1]
    assert len(shown) == 8 and len(fails) == 6  # 8 rows: 6 failures (most of 270 succeed), 2 successes
    assert shown[: len(fails)] == fails  # failures before successes
    worst = sorted(
        np.flatnonzero(r.query_precision < 1), key=lambda i: (r.query_precision[i], r.query_ap[i], i)
    )
    assert fails == [int(i) for i in worst[:6]]  # and they are the worst queries, worst first
    page = r.html.read_text()
    assert page.index("Failures: queries with a wrong neighbour") < page.index("Successes")
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    assert len(rows) == 8
    for row, i in zip(rows, shown, strict=True):
        assert f"title='{html.escape(r.query_ids[i])}'" in row  # the rows in the order of r.shown
        bad = row.count(f"{BAD_MARK} wrong class")
        assert bad == round(5 * (1 - r.query_precision[i]))
        assert bad + row.count(f"{OK_MARK} same class") == 5
        assert row.count("class='bad'") == bad  # the red frames mark the same neighbours
        # Every neighbour labelled with its rank, class and distance.
        labels = re.findall(r"#(\d+) <b>([^<]+)</b></div><div>d = (\d\.\d{3})</div>", row)
        assert [int(rank) for rank, _, _ in labels] == [1, 2, 3, 4, 5]
        dists = [float(d) for _, _, d in labels]
        assert dists == sorted(dists) and dists == pytest.approx(r.distances[i].tolist(), abs=6e-4)
        assert f"P@5 {r.query_precision[i]:.2f}" in row and f"AP {r.query_ap[i]:.2f}" in row


def test_numbers_are_labelled_and_explained(pixel_search):
    page = pixel_search.html.read_text()
    n_fail = int((pixel_search.query_precision < 1).sum())
    for text in ("precision@5", f"{pixel_search.metrics['precision@5']:.3f}", "mAP@5",
                 f"{pixel_search.metrics['map@5']:.3f}", "min(5, R)", "queries with a wrong neighbour",
                 f"{n_fail} of 270", "1 - cosine similarity"):  # fmt: skip
        assert text in page, text
    # Thumbnails are drawn large (the old page used 56 px).
    width = re.search(r"img\{width:(\d+)px", page)
    assert width and int(width.group(1)) >= 90


def test_unlabelled_queries_are_labelled_without_right_or_wrong(tmp_path):
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * (i + 1), dtype=np.uint8), mode="L").save(tmp_path / f"q{i}.png")
    r = retrieve(index="digits", query=[tmp_path], features="pixels", k=3, out=tmp_path / "files.png")
    page = r.html.read_text()
    assert r.query_precision is None and r.shown == [0, 1]
    assert BAD_MARK not in page and OK_MARK not in page and "unlabelled" in page
    assert len(re.findall(r"#\d+ <b>\d</b></div><div>d = ", page)) == 6
