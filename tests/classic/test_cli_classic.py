"""`cnnkit filter`, `cnnkit filter-bank` and `cnnkit baseline` through their register()-built parsers."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli import classic
from cnnkit.errors import CnnkitError


def run(*argv: str) -> int:
    """Parse like `cnnkit ...` would (only the classic subcommands) and call the command."""
    parser = argparse.ArgumentParser(prog="cnnkit")
    classic.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    """A 40x50 RGB test image with a bright square (edges to find)."""
    rng = np.random.default_rng(0)
    img = np.full((40, 50, 3), 60, np.uint8)
    img[10:30, 15:35] = (200, 180, 40)
    img = np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(img).save(path)
    return str(path)


GAUSS_EFF = 2 * (2 * math.ceil(3 * 1.5)) + 1  # gaussian sigma=1.5 is 11x11; dilation 2 spans 21 pixels


@pytest.mark.parametrize(
    "flags,size",
    [
        (["--kernel", "sobel_x"], (50, 40)),  # same: same size (PIL sizes are width x height)
        (["--kernel", "sobel_x", "--mode", "valid"], (48, 38)),
        (["--kernel", "laplacian", "--mode", "full", "--boundary", "periodic"], (52, 42)),
        (["--kernel", "prewitt_y", "--stride", "2", "--boundary", "mirror"], (25, 20)),
        (
            [
                "--kernel",
                "gaussian",
                "-p",
                "sigma=1.5",
                "--mode",
                "valid",
                "--stride",
                "3",
                "--dilation",
                "2",
            ],
            (math.ceil((50 - GAUSS_EFF + 1) / 3), math.ceil((40 - GAUSS_EFF + 1) / 3)),
        ),
    ],
)
def test_filter_writes_grayscale_png(photo, tmp_path, capsys, flags, size):
    out = tmp_path / "out.png"
    assert run("filter", photo, *flags, "-o", str(out)) == 0
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == size
        arr = np.asarray(im)
    assert arr.min() == 0 and arr.max() == 255  # normalised for display
    assert "wrote" in capsys.readouterr().out


def test_filter_color_and_edges(photo, tmp_path):
    out = tmp_path / "c.png"
    assert (
        run("filter", photo, "--kernel", "boxcar", "-p", "n=5", "--color", "--convolve", "-o", str(out)) == 0
    )
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (50, 40)
    # The Sobel x response is strongest on the square's vertical sides (columns 15 and 34).
    run("filter", photo, "--kernel", "sobel_x", "--boundary", "mirror", "-o", str(out))
    resp = np.asarray(Image.open(out), dtype=float)
    col_energy = np.abs(resp - np.median(resp))[12:28].mean(axis=0)
    assert set(np.argsort(col_energy)[-4:]) <= {13, 14, 15, 16, 33, 34, 35, 36}


def test_filter_bank_writes_a_labelled_grid(photo, tmp_path, capsys):
    out = tmp_path / "bank.png"
    assert run("filter-bank", photo, "-o", str(out), "--max-size", "32") == 0
    printed = capsys.readouterr().out
    with Image.open(out) as im:
        w, h = im.size
    assert f"{w} x {h}" in printed
    assert (w, h) == (1600, 1440)  # 4 columns x 4 rows of 400x360-pixel panels (15 filters + input)


def test_baseline_prints_test_accuracy(capsys):
    assert run("baseline", "--data", "digits", "--features", "pixels", "--classifier", "logreg") == 0
    out = capsys.readouterr().out
    acc = float(out.split("test accuracy ")[1].split()[0].rstrip("%")) / 100  # one format: percentages
    assert acc == pytest.approx(0.9630) and "digits: pixels + logreg" in out  # README: 96.30% (260 of 270)


def test_bad_kernel_name_suggests_close_names(photo):
    with pytest.raises(CnnkitError) as ei:
        run("filter", photo, "--kernel", "sobell_x")
    assert "'sobell_x'" in str(ei.value) and "sobel_x" in ei.value.hint
    with pytest.raises(CnnkitError, match="KEY=VALUE"):
        run("filter", photo, "--kernel", "gaussian", "-p", "sigma")
    with pytest.raises(CnnkitError, match="'lbpp'"):
        run("baseline", "--features", "lbpp")
    with pytest.raises(CnnkitError, match="not found"):
        run("filter", photo + ".missing")


def test_cnnkit_main_prints_errors_without_traceback(photo, monkeypatch, capsys):
    # Through the real entry point, with only this module registered (the lead adds "classic"
    # to COMMAND_MODULES): a CnnkitError becomes a one-line message and exit code 2.
    import cnnkit.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["classic"])
    assert cli.main(["filter", photo, "--kernel", "sobelx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown kernel 'sobelx'") and "did you mean 'sobel_x'" in err
    assert "Traceback" not in err
