"""Every explain subcommand writes its PNG from a trained run; user mistakes give a message, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from cnnkit.cli import main


@pytest.fixture(scope="module")
def digit_png(trained_run, tmp_path_factory) -> Path:
    """The first test-split "3" of the run's data, saved as a PNG like a user would have it."""
    from cnnkit.evaluate import run_data
    from cnnkit.run import load_run

    test = run_data(load_run(trained_run)).test
    i = int((test.labels == 3).nonzero()[0])
    path = tmp_path_factory.mktemp("digit") / "three.png"
    Image.fromarray(test.images[i, 0].numpy(), mode="L").save(path)
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _png(path: Path) -> tuple[int, int]:
    assert path.is_file(), path
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.mark.parametrize("method", ["gradcam", "guided-backprop"])
def test_explain_writes_the_overlay_and_prints_the_top5(trained_run, digit_png, tmp_path, capsys, method):
    out = tmp_path / f"{method}.png"
    code, text, _ = _run(capsys, "explain", trained_run, digit_png, "--method", method, "-o", out)
    assert code == 0
    assert text.splitlines()[1].startswith("most likely: 3 ")  # the trained model calls it a 3
    assert _png(out)[0] > 800


def test_each_other_command_writes_its_figure(trained_run, digit_png, tmp_path, capsys):
    run = str(trained_run)
    cmds = {
        "filters.png": ["filters", run, "--gabor"],
        "maps.png": ["feature-maps", run, digit_png, "--layer", "features.3"],
        "top.png": ["top-activations", run, "--layer", "features.3", "--unit", "2", "-k", "4"],
        "dream.png": ["dream", run, "--class", "3,7", "--steps", "10"],
        "fool.png": ["fool", run, digit_png, "--method", "pgd", "--eps", "0.2", "--steps", "10"],
        "robustness.png": ["robustness", run, "--eps", "0,8/255,0.1", "--limit", "60", "--method", "fgsm,pgd",
                           "--steps", "3"],  # fmt: skip
        "style.png": ["style-transfer", digit_png, digit_png, "--model", run, "--size", "32", "--steps", "3"],
    }
    for name, args in cmds.items():
        code, text, err = _run(capsys, *args, "-o", tmp_path / name)
        assert code == 0, (name, err)
        assert f"written to {tmp_path / name}" in text
        _png(tmp_path / name)
    # The robustness table lists every eps for both attacks.
    code, text, _ = _run(capsys, "robustness", run, "--eps", "0,0.1", "--limit", "30", "-o", tmp_path / "r.png")
    assert "25.5" in text and "FGSM" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "{run}", "{img}", "--target", "seven"], "unknown class 'seven'"),
        (["explain", "{run}", "{img}", "--method", "saliency", "--layer", "features.0"], "--layer is only used by gradcam"),
        (["explain", "{run}", "{img}", "--layer", "features.33"], "did you mean"),
        (["fool", "{run}", "{img}", "--eps", "8"], "eps must be in [0, 1]"),
        (["top-activations", "{run}", "--layer", "features.3", "--unit", "99"], "out of range"),
        (["robustness", "{run}", "--method", "fgsn"], "did you mean 'fgsm'"),
        (["feature-maps", "{run}", "missing.png", "--layer", "features.0"], "does not exist"),
    ],
)
def test_user_mistakes_are_short_messages(trained_run, digit_png, tmp_path, capsys, args, message):
    args = [a.format(run=trained_run, img=digit_png) for a in args]
    code, _, err = _run(capsys, *args, "-o", tmp_path / "x.png")
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
