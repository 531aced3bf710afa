"""LeNet-5's 1998 demo on the session's trained digit model: numbers that behave, and the picture."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from cnnkit import evaluate
from cnnkit.cli import main


@pytest.mark.slow
def test_demo_numbers_and_figure(trained_run, tmp_path, capsys):
    out = tmp_path / "demo.png"
    t = time.perf_counter()
    assert main(["robustness-demo", str(trained_run), "--strings", "40", "-o", str(out)]) == 0
    seconds = time.perf_counter() - t
    text = capsys.readouterr().out
    print(text, f"{seconds:.1f} s")
    for word in (
        "shift (px)",
        "noise (sigma)",
        "scale",
        "rotation (deg)",
        "apart",
        "touching",
        "overlapping",
    ):
        assert word in text
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] > 600


@pytest.mark.slow
def test_undistorted_accuracy_is_the_test_accuracy_and_strong_distortion_hurts(trained_run, tmp_path):
    from cnnkit.explain.robustness_demo import robustness_demo

    r = robustness_demo(trained_run, tmp_path / "d.png", n_strings=30)
    acc = evaluate(trained_run, write=False, report=False)["acc"]
    for values in r.accuracy.values():
        assert values[0] == r.accuracy["shift (px)"][0]  # level 0 is the clean test set for every kind
    assert abs(r.accuracy["shift (px)"][0] - acc) < 1e-6
    assert r.accuracy["noise (sigma)"][-1] < r.accuracy["noise (sigma)"][0]
    assert r.accuracy["rotation (deg)"][-1] < r.accuracy["rotation (deg)"][0]
    assert r.accuracy["shift (px)"][1] > 0.8  # 2 px: within what training augmentation covered
    assert r.strings["apart"] > 0.2 and r.digits_read["apart"] > 0.5
