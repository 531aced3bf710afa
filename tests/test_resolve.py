"""One answer to "run folder or model name?" and one image reader, for every command that takes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.errors import CheckpointError
from cnnkit.resolve import names_a_run, run_or_model


@pytest.mark.parametrize(
    "target, is_run",
    [("lenet5", False), ("torchvision:resnet18", False), ("timm:resnet18", False), ("runs/demo", True),
     ("./demo", True), ("..", True), ("runs\\demo", True), (Path("demo"), True)],
)  # fmt: skip
def test_names_a_run(target, is_run):
    assert names_a_run(target) is is_run


def test_run_or_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_or_model("resnet18") == "resnet18"  # a name is returned as given; the registry checks it
    with pytest.raises(CheckpointError, match="neither a run folder nor a model name") as e:
        run_or_model("runs/nope")
    assert "does not exist" in e.value.message
    (tmp_path / "notes").mkdir()
    with pytest.raises(CheckpointError, match="holds no weights"):  # an existing folder is a run folder
        run_or_model("notes")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        run_or_model("./file.txt")


def test_classic_reader_is_the_data_reader_with_exif_orientation(tmp_path):
    """classic's float images come from data.images.read_image: EXIF orientation applied (it was not)."""
    from cnnkit.classic.datasets import read_image as classic_read
    from cnnkit.data.images import read_image

    a = np.zeros((4, 6), dtype=np.uint8)
    a[0, :] = 255  # the top row white
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    im.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    got = classic_read(tmp_path / "rot.jpg")
    assert got.shape == (6, 4) and got.dtype == np.float64  # displayed upright: portrait
    assert got[:, -1].mean() > 0.8 and got[:, 0].mean() < 0.2  # the white row is now the right column
    want = read_image(tmp_path / "rot.jpg", 1, None)[0].numpy() / 255.0
    assert np.array_equal(got, want)
    rgb = classic_read(tmp_path / "rot.jpg", color=True, size=(3, 2))
    assert rgb.shape == (3, 2, 3)
