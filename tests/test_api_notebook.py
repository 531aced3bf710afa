"""The Python API in a notebook (issue 17, item 8).

``cnnkit.predict`` and ``run.predict`` take images in every form a notebook holds them (paths,
folders, PIL images, NumPy arrays, tensors; one or many) and must give exactly the model's
probabilities on the same uint8 pixels. A loaded run has ``predict``, ``explain`` and ``evaluate``;
runs, datasets, summaries and evaluation results print a short ``repr`` and show an HTML table in
Jupyter (``_repr_html_``). Everything runs on the session's LeNet-5 trained on digits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.errors import ConfigError, DataError
from cnnkit.evaluate import EvalResult, Prediction, predict_probs, run_data
from cnnkit.explain import attribute, from_run

N = 4


@pytest.fixture(scope="module")
def run_dir(trained_run) -> Path:
    return trained_run  # the session's LeNet-5 on digits (tests/conftest.py): no extra training


@pytest.fixture(scope="module")
def run(run_dir) -> cnnkit.LoadedRun:
    return cnnkit.load_run(run_dir)


@pytest.fixture(scope="module")
def test_images(run) -> tuple[torch.Tensor, torch.Tensor]:
    """The first N test images (uint8 ``N x 1 x 32 x 32``, already the model's input size) and labels."""
    test = run_data(run).test
    return test.images[:N], test.labels[:N]


@pytest.fixture(scope="module")
def folder(test_images, tmp_path_factory) -> tuple[Path, list[Path]]:
    x, _ = test_images
    d = tmp_path_factory.mktemp("notebook_images")
    files = []
    for i in range(N):
        files.append(d / f"img{i}.png")
        Image.fromarray(x[i, 0].numpy(), mode="L").save(files[-1])
    return d, files


def probs_of(p: Prediction, classes: list[str]) -> torch.Tensor:
    assert p.error is None, p.error
    full = dict(p.top)
    return torch.tensor([full[c] for c in classes], dtype=torch.float64)


# ----------------------------------------------------------------------------------------- predict


def test_every_image_form_gives_the_models_probabilities(run, run_dir, test_images, folder):
    x, _ = test_images
    expected = predict_probs(run, x).double()
    gray = x[:, 0].numpy()  # N x H x W uint8
    forms = {
        "path": lambda i: str(folder[1][i]),
        "Path": lambda i: folder[1][i],
        "PIL": lambda i: Image.fromarray(gray[i], mode="L"),
        "array HxW": lambda i: gray[i],
        "array HxWx1": lambda i: gray[i][:, :, None],
        "array float 0..1": lambda i: gray[i].astype(np.float32) / 255,
        "array RGB": lambda i: np.repeat(gray[i][:, :, None], 3, axis=2),  # converted to grey as files are
        "tensor CxHxW": lambda i: x[i],
        "tensor float 0..1": lambda i: x[i].float() / 255,
        "tensor HxW": lambda i: x[i, 0],
    }
    for name, make in forms.items():
        for i in range(N):
            (one,) = cnnkit.predict(run, make(i), topk=10)  # a single image: a list of one
            torch.testing.assert_close(
                probs_of(one, run.classes), expected[i], atol=1e-5, rtol=1e-5, msg=name
            )
    # several at once: a list, an N x H x W x C array, an N x C x H x W tensor, a folder; same answers
    batches = {
        "list": [gray[i] for i in range(N)],
        "array NxHxWxC": gray[:, :, :, None],
        "tensor NxCxHxW": x,
        "folder": folder[0],
    }
    for name, images in batches.items():
        preds = run.predict(images, topk=10)
        assert len(preds) == N, name
        got = torch.stack([probs_of(p, run.classes) for p in preds])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=name)
    # run.predict is cnnkit.predict with the run; a run folder works the same; names say which image
    by_folder = cnnkit.predict(run_dir, [folder[0], gray[0]], topk=3)
    assert [p.path for p in by_folder] == [str(f) for f in folder[1]] + ["<image 1>"]
    assert [p.top for p in run.predict([folder[0], gray[0]], topk=3)] == [p.top for p in by_folder]
    assert len(by_folder[0].top) == 3
    run.model.train()  # left in training mode in a notebook: predicting puts it back in eval mode
    torch.testing.assert_close(probs_of(run.predict(gray[0], topk=10)[0], run.classes), expected[0])
    assert not run.model.training


def test_unusable_images_get_an_error_not_a_traceback(run, tmp_path):
    ok = np.zeros((32, 32), np.uint8)
    bad = [
        np.zeros((32, 32, 5), np.uint8),
        np.full((32, 32), -1.0),
        {"not": "an image"},
        str(tmp_path / "no.png"),
    ]
    preds = run.predict([ok, *bad])
    assert preds[0].error is None and len(preds[0].top) == 5
    for p in preds[1:]:
        assert p.top == [] and p.error and "\n" not in p.error
    assert "normalised" in preds[2].error
    assert "dict" in preds[3].error
    with pytest.raises(DataError, match="no images found in"):
        run.predict([tmp_path, ok])  # an empty folder among other images is still a mistake
    with pytest.raises(DataError, match="no image paths given"):
        cnnkit.predict(run, [])


# ------------------------------------------------------------------------------------ run methods


def test_loaded_run_repr_and_html(run, run_dir):
    text = repr(run)
    assert len(text) < 200 and "lenet5" in text and "10 classes" in text and "1x32x32" in text
    assert run.device == torch.device("cpu")
    page = run._repr_html_()
    assert "lenet5" in page and "1x32x32" in page and "best epoch" in page
    assert ("data:image/png;base64," in page) == (Path(run_dir) / "curves.png").is_file()


def test_explain_is_the_attribution_of_the_predicted_class(run, test_images, folder):
    x, _ = test_images
    e = run.explain(folder[1][0])
    assert e.method == "gradcam" and e.heatmap.shape == (32, 32)
    pixels = x[:1].float() / 255
    probs = predict_probs(run, x[:1])[0]
    assert e.target == run.classes[int(probs.argmax())] == e.top[0][0]
    layer = e.layer.split(" ")[0]  # "features.3 (read after its activation features.4)"
    expected = attribute(from_run(run), pixels, "gradcam", int(probs.argmax()), layer=layer)[0]
    torch.testing.assert_close(e.heatmap, expected, atol=1e-5, rtol=1e-4)
    # another class and another method, from an array
    s = run.explain(x[0, 0].numpy(), method="saliency", target=run.classes[3])
    assert s.target == run.classes[3] and s.layer is None and float(s.heatmap.min()) >= 0
    assert "saliency" in repr(s) and len(repr(s)) < 200
    assert e._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ConfigError, match="one image"):
        run.explain([x[0], x[1]])
    with pytest.raises(ConfigError, match="only used by gradcam"):
        run.explain(x[0], method="saliency", layer="features.0")


def test_evaluate_result_reads_like_the_dict_it_was(run, run_dir):
    r = run.evaluate(write=False)
    assert isinstance(r, EvalResult) and isinstance(r, dict)
    plain = cnnkit.evaluate(run_dir, write=False)
    assert r["acc"] == r.acc == r.accuracy == plain["acc"] and r.n == 270
    assert r.per_class == r["per_class"] and len(r.per_class) == 10
    assert json.loads(json.dumps(r))["acc"] == r.acc  # still JSON as it is
    d = r.to_dict()
    assert type(d) is dict and d == dict(r)
    d["per_class"][0]["f1"] = -1.0
    assert r.per_class[0]["f1"] != -1.0  # a copy, not a view
    with pytest.raises(AttributeError, match="no metric 'accuracy_top3'"):
        _ = r.accuracy_top3
    assert "acc" in dir(r) and "per_class" in dir(r)
    text = repr(r)
    assert len(text) < 300 and "accuracy" in text and f"{r.acc:.2%}" in text, text
    page = r._repr_html_()
    assert all(f">{c}<" in page for c in run.classes) and f"{r.acc:.2%}" in page
    assert "data:image/png" not in page  # nothing was written, so no confusion matrix (even a stale one)


def test_evaluate_result_shows_its_confusion_matrix_once_written(run):
    r = run.evaluate(report=False)
    assert r.written and (Path(r.out_dir) / "confusion.png").is_file()
    assert "data:image/png;base64," in r._repr_html_()


def test_to_frame_needs_pandas_and_says_so(run, monkeypatch):
    r = run.evaluate(write=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ConfigError, match="needs pandas") as e:
        r.to_frame()
    assert "pip install pandas" in e.value.hint


def test_to_frame_with_pandas(run):
    pd = pytest.importorskip("pandas")
    r = run.evaluate(write=False)
    f = r.to_frame()
    assert isinstance(f, pd.DataFrame) and list(f.index) == run.classes
    assert f.loc[run.classes[0], "f1"] == r.per_class[0]["f1"]
    assert r.to_frame("summary").loc[0, "acc"] == r.acc
    with pytest.raises(ConfigError, match="unknown frame"):
        r.to_frame("rows")


# ------------------------------------------------------------------------- datasets and summaries


def test_dataset_prints_short_and_shows_counts_and_samples():
    ds = cnnkit.load_dataset("digits")
    text = repr(ds)
    assert len(text) < 200 and "10 classes" in text and "1257 train / 270 val / 270 test" in text
    assert str(ds) == text and len(repr(ds.train)) < 100 and "1257 images" in repr(ds.train)
    page = ds._repr_html_()
    assert len(page) < 40_000  # printing the dataset used to dump 33 KB of tensor text
    for split in ("train", "val", "test"):
        counts = ds.split(split).class_counts(10)
        assert f">{split}<" in page and all(f">{n}<" in page for n in counts)
    assert page.count("<img") == 10  # one sample per class


def test_summary_prints_short_and_shows_the_table():
    s = cnnkit.summary("lenet5")
    text = repr(s)
    assert len(text) < 200 and "lenet5" in text and "61,706 parameters" in text
    page = s._repr_html_()
    assert all(f">{r.name}<" in page for r in s.rows) and "61,706" in page
    assert "<script" not in page


def test_a_streamed_dataset_displays_without_reading_its_files():
    from cnnkit.data import DatasetSplits, FileData

    files = FileData(["missing/a.png", "missing/b.png"], torch.tensor([0, 1]), ["a", "b"], 3, (64, 48))
    ds = DatasetSplits("folder:missing", ["cat", "dog"], files, files.subset([0]), files.subset([1]))
    assert repr(files) == "FileData(2 image files, decoded to 3x64x48 batch by batch)"
    assert "streamed from files" in repr(ds) and "2 train / 1 val / 1 test" in repr(ds)
    page = ds._repr_html_()  # the files do not exist: nothing may try to decode them
    assert ">cat<" in page and ">dog<" in page and "<img" not in page
