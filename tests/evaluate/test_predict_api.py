"""``cnnkit.predict(run_dir, paths)``: the Python API behind ``cnnkit predict``.

Test images are written as PNG files from the run's own test split (uint8, already at the run's
32x32 input size, so the round trip through the file is exact): the API's probabilities must equal
the model's on the tensors, agree with ``cnnkit predict --json`` and name the run's classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.cli import main
from cnnkit.evaluate import Prediction, predict_probs, run_data

N = 8


@pytest.fixture(scope="module")
def images(trained_run, tmp_path_factory) -> tuple[Path, list[Path], torch.Tensor, torch.Tensor]:
    """``(folder, files, uint8 images, labels)``: the first N test images of the run, as PNG files."""
    test = run_data(cnnkit.load_run(trained_run)).test
    folder = tmp_path_factory.mktemp("predict_api")
    files = []
    for i in range(N):
        f = folder / f"img{i}.png"
        Image.fromarray(test.images[i, 0].numpy(), mode="L").save(f)
        files.append(f)
    return folder, files, test.images[:N], test.labels[:N]


def test_structure_topk_and_class_names(trained_run, images):
    _, files, _, _ = images
    classes = cnnkit.load_run(trained_run).classes
    assert classes == [str(i) for i in range(10)]
    preds = cnnkit.predict(trained_run, [str(f) for f in files])
    assert isinstance(preds, list) and len(preds) == N
    for p, f in zip(preds, files, strict=True):
        assert isinstance(p, Prediction) and p.path == str(f) and p.error is None
        assert len(p.top) == 5  # the default top-5
        names = [c for c, _ in p.top]
        probs = [v for _, v in p.top]
        assert len(set(names)) == 5 and set(names) <= set(classes)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in probs)
        assert probs == sorted(probs, reverse=True)
    # topk: fewer, and at most the number of classes; a single path may be a plain string
    (one,) = cnnkit.predict(trained_run, str(files[0]), topk=2)
    assert len(one.top) == 2 and [c for c, _ in one.top] == [c for c, _ in preds[0].top[:2]]
    assert [v for _, v in one.top] == pytest.approx([v for _, v in preds[0].top[:2]], abs=1e-6)
    assert len(cnnkit.predict(trained_run, [files[0]], topk=50)[0].top) == len(classes)


def test_probabilities_are_the_models_and_sum_to_one(trained_run, images):
    folder, files, x, labels = images
    run = cnnkit.load_run(trained_run)
    expected = predict_probs(run, x)  # the model on the same uint8 pixels, without files
    preds = cnnkit.predict(trained_run, [folder], topk=10)  # a folder: its images, sorted by name
    assert [p.path for p in preds] == [str(f) for f in files]
    for i, p in enumerate(preds):
        full = dict(p.top)
        assert sum(full.values()) == pytest.approx(1.0, abs=1e-5)
        got = torch.tensor([full[c] for c in run.classes], dtype=expected.dtype)
        torch.testing.assert_close(got, expected[i], atol=1e-6, rtol=1e-5)
    # A trained LeNet-5 (98.9% on this split) gets these digits right.
    top1 = [int(p.top[0][0]) for p in preds]
    assert sum(t == int(y) for t, y in zip(top1, labels, strict=True)) >= N - 1, (top1, labels.tolist())


def test_agrees_with_the_cli_json(trained_run, images, capsys):
    folder, files, _, _ = images
    bad = folder / "zz_not_an_image.png"
    bad.write_bytes(b"not an image")
    try:
        api = cnnkit.predict(trained_run, [folder], topk=3)
        assert main(["predict", str(trained_run), str(folder), "--json", "--topk", "3"]) == 0
    finally:
        bad.unlink()
    cli = json.loads(capsys.readouterr().out)
    assert [p.path for p in api] == [c["path"] for c in cli] == [str(f) for f in files] + [str(bad)]
    for a, c in zip(api, cli, strict=True):
        assert [name for name, _ in a.top] == [t["class"] for t in c["top"]]
        assert [round(v, 6) for _, v in a.top] == [t["prob"] for t in c["top"]]
    # an unreadable file: an error instead of classes, in both
    assert api[-1].top == [] and api[-1].error and "error" in cli[-1] and cli[-1]["top"] == []


def test_nothing_to_predict_is_a_clear_error(trained_run, tmp_path):
    from cnnkit.errors import DataError

    with pytest.raises(DataError) as e:
        cnnkit.predict(trained_run, [])
    assert e.value.message == "no image paths given"
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images found in " + str(tmp_path)):
        cnnkit.predict(trained_run, [tmp_path])


def test_a_single_path_object(trained_run, images):
    _, files, _, _ = images
    assert len(cnnkit.predict(trained_run, files[0])) == 1
