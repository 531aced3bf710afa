"""``show-batch`` draws the images at the size training feeds the model, not the files' own size."""

from __future__ import annotations

import pytest

import cnnkit.data.preview as preview
from cnnkit.cli import main
from cnnkit.config import TrainConfig
from cnnkit.engine.train import resolve_config


@pytest.mark.parametrize(("args", "model"), [([], "lenet5"), (["--model", "lenet1"], "lenet1")])
def test_digits_are_drawn_at_the_training_input_size(tmp_path, monkeypatch, capsys, args, model):
    drawn = []
    save = preview.save_batch_grid

    def keep(images, labels, classes, path, title=None):
        drawn.append((tuple(images.shape), title))
        return save(images, labels, classes, path, title=title)

    monkeypatch.setattr(preview, "save_batch_grid", keep)
    assert (
        main(["show-batch", "digits", "-o", str(tmp_path / "b.png"), "--n", "4", "--augment", "none", *args])
        == 0
    )
    side = resolve_config(TrainConfig(model=model, data="digits")).input_size
    assert side in (28, 32)  # digits files are 8x8; cnnkit train upsamples them for the model
    (shape, title) = drawn[0]
    assert shape == (4, 1, side, side) and f"{side}x{side}" in title
    capsys.readouterr()
    # An explicit --input-size still wins, as it does for cnnkit train.
    assert (
        main(["show-batch", "digits", "-o", str(tmp_path / "c.png"), "--n", "2", "--input-size", "8", *args])
        == 0
    )
    assert drawn[1][0] == (2, 1, 8, 8)
