"""Retrieval: metrics on hand-computed lists, exact neighbours, and CNN features beating raw pixels."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.transfer import nearest_neighbors, retrieval_metrics, retrieve


def test_metrics_on_a_hand_computed_example():
    # Query of class 1 with R = 2 relevant index items; ranked list 1, 0, 1:
    # P@3 = 2/3; AP@3 = (P@1 + P@3) / min(3, 2) = (1 + 2/3) / 2 = 5/6.
    m = retrieval_metrics([1], np.array([[1, 0, 1]]), k=3, n_relevant=[2])
    assert m["precision@3"] == pytest.approx(2 / 3) and m["map@3"] == pytest.approx(5 / 6)
    # Two queries: a perfect list (AP 1) and one with nothing relevant (AP 0).
    m = retrieval_metrics([0, 2], np.array([[0, 0], [1, 1]]), n_relevant=[5, 3])
    assert m["map@2"] == pytest.approx(0.5) and m["precision@2"] == pytest.approx(0.5)
    # Relevant items found late score less than the same items found early.
    early = retrieval_metrics([0], np.array([[0, 1, 1]]), n_relevant=[1])["map@3"]
    late = retrieval_metrics([0], np.array([[1, 1, 0]]), n_relevant=[1])["map@3"]
    assert early == 1.0 and late == pytest.approx(1 / 3)


def test_nearest_neighbors_match_brute_force():
    rng = np.random.default_rng(1)
    x, q = rng.normal(size=(50, 8)), rng.normal(size=(6, 8))
    idx, d = nearest_neighbors(x, q, k=4, metric="l2")
    brute = ((q[:, None] - x[None]) ** 2).sum(-1)
    assert np.array_equal(idx, np.argsort(brute, 1)[:, :4])
    idx, d = nearest_neighbors(x, q, k=4, metric="cosine")
    cos = (q @ x.T) / np.linalg.norm(q, axis=1)[:, None] / np.linalg.norm(x, axis=1)[None]
    assert np.array_equal(idx, np.argsort(-cos, 1)[:, :4])
    assert np.allclose(d, 1 - np.sort(cos, 1)[:, ::-1][:, :4], atol=1e-5)


def test_trained_features_beat_raw_pixels_and_draw_png_and_html(digits_run, tmp_path):
    cnn = retrieve(model=digits_run, k=10, out=tmp_path / "cnn.png", show=4)
    pixels = retrieve(model=digits_run, features="pixels", k=10)  # same index and queries, raw pixels
    print(f"\nmAP@10 CNN {cnn.metrics['map@10']:.4f}  pixels {pixels.metrics['map@10']:.4f}")
    assert cnn.query_ids == pixels.query_ids and cnn.metrics["queries"] > 250
    assert cnn.metrics["map@10"] > pixels.metrics["map@10"]
    # README: "mAP@10 ... 0.947 with raw pixels" (train split indexes the test split). Raw pixels do
    # not depend on the network, only on the seed-0 split and the 32 px resize: deterministic.
    assert pixels.metrics["map@10"] == pytest.approx(0.947, abs=5e-4)
    assert cnn.png.stat().st_size > 10_000
    page = cnn.html.read_text()
    assert page.count("<tr>") == 4 and page.count("data:image/png;base64,") == 4 * 11
    pq = retrieve(model=digits_run, k=10, pq=8, pq_bits=6)
    assert pq.metrics["map@10"] > pixels.metrics["map@10"] - 0.05  # 8 bytes per image, barely worse
