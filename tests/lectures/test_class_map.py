"""Class maps of a trained LeNet-5: strings of test digits read left to right, shift and stitch, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnkit.cli import main
from cnnkit.errors import ConfigError
from cnnkit.evaluate.runner import run_data
from cnnkit.explain import from_run
from cnnkit.explain.class_map import class_map, class_maps, read_string
from cnnkit.explain.distort import digit_strings
from cnnkit.run import load_run


@pytest.fixture(scope="module")
def digits(trained_run):
    """The trained model in pixel space and its test digits (never seen in training), in [0, 1]."""
    run = load_run(trained_run)
    test = run_data(run).test
    return from_run(run), test.images.float() / 255, test.labels


def test_three_digit_strips_are_read_left_to_right_far_above_chance(digits):
    model, x, y = digits
    strips, labels = digit_strings(x, y, 100, 3, seed=0)  # 32 x 96: three test digits edge to edge
    maps = class_maps(model, strips)
    assert maps[0].probs.shape == (10, 1, 17)  # (96 - 32) / 4 + 1 windows
    reads = [[c for c, _, _ in read_string(m)] for m in maps]
    rate = sum(r == lab.tolist() for r, lab in zip(reads, labels, strict=True)) / len(reads)
    print(f"3-digit strips read exactly: {rate:.0%} (chance 0.1%)")
    # Chance is 1 in 1000; the windows straddling two digits (never seen in training) are the misreads.
    assert rate >= 0.3


def test_the_windows_on_the_digits_are_the_digits(digits):
    """Cells 0, 8 and 16 of a strip's map are exactly the three digits' own 32x32 windows."""
    model, x, y = digits
    strips, labels = digit_strings(x, y, 50, 3, seed=1)
    maps = class_maps(model, strips)
    on_digits = torch.stack([m.probs[:, 0, [0, 8, 16]].T for m in maps])  # strips x 3 x classes
    with torch.no_grad():
        alone = model(torch.cat([strips[:, :, :, 32 * k : 32 * k + 32] for k in range(3)])).softmax(1)
    alone = alone.view(3, len(strips), -1).transpose(0, 1)
    assert torch.allclose(on_digits, alone, atol=1e-5)
    on_digits = on_digits.argmax(-1)
    assert (on_digits == labels).float().mean() > 0.9


def test_a_finer_stride_interleaves_shifted_maps(digits):
    model, x, y = digits
    strip = digit_strings(x, y, 1, 3, seed=2)[0][0]
    coarse, fine = class_map(model, strip), class_map(model, strip, stride=2)
    assert fine.stride == (2, 2) and coarse.stride == coarse.network_stride == (4, 4)
    assert fine.probs.shape[-1] == 2 * coarse.probs.shape[-1] - 1  # (96 - 32) / 2 + 1 windows
    assert torch.allclose(fine.probs[..., ::2], coarse.probs, atol=1e-6)  # even cells: the unshifted pass
    assert torch.allclose(fine.cols[::2], coarse.cols)
    with pytest.raises(ConfigError, match="does not divide"):
        class_map(model, strip, stride=3)
    with pytest.raises(ConfigError, match="smaller than"):
        class_map(model, strip[..., :20])


def _png(path: Path, img: torch.Tensor) -> Path:
    Image.fromarray((img[0] * 255).round().byte().numpy(), mode="L").save(path)
    return path


def test_cli_prints_stride_and_receptive_field_and_writes_the_figure(trained_run, digits, tmp_path, capsys):
    model, x, y = digits
    strips, labels = digit_strings(x, y, 1, 3, seed=3)
    image = _png(tmp_path / "strip.png", strips[0])
    out = tmp_path / "map.png"
    assert main(["class-map", str(trained_run), str(image), "-o", str(out), "--stride", "2"]) == 0
    text = capsys.readouterr().out
    assert "class map 1x33" in text and "32x32 px window" in text and "network stride 4 px" in text
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 400

    assert main(["class-map", str(trained_run), str(image), "-o", str(out), "--stride", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stride 3 does not divide") and "Traceback" not in err
    assert (
        main(["class-map", str(trained_run), str(tmp_path / "missing.png"), "-o", str(tmp_path / "m2.png")])
        != 0
    )
    assert "missing.png" in capsys.readouterr().err


def test_a_model_without_a_convertible_head_gets_one_line(stn_run, tmp_path, capsys):
    image = _png(tmp_path / "big.png", torch.zeros(1, 40, 40))
    assert main(["class-map", str(stn_run), str(image), "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert "cannot convolutionalise stn_lenet5" in err and "hint:" in err and "Traceback" not in err
    assert not (tmp_path / "m.png").exists()
