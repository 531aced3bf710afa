"""Test-time augmentation averages the probabilities of its views; ensembles average runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cnnkit.errors import CheckpointError, ConfigError
from cnnkit.evaluate import evaluate_run, predict_logits, predict_probs, run_data, tta_views
from cnnkit.run import load_run


@pytest.fixture(scope="module")
def run_and_images(trained_run):
    run = load_run(trained_run)
    test = run_data(run).test
    return run, test.images[:24]


def test_flip_views_are_the_images_and_their_mirror_images(run_and_images):
    _, x = run_and_images
    views = tta_views(x, "flip")
    assert len(views) == 2
    assert torch.equal(views[0], x)
    assert torch.equal(views[1], x[..., torch.arange(x.shape[-1] - 1, -1, -1)])  # column j <- column W-1-j


def test_ten_crops_are_corners_centre_and_mirrors_of_a_larger_image(run_and_images):
    from cnnkit.data import resize_uint8

    _, x = run_and_images
    h, w = x.shape[-2:]
    views = tta_views(x, "crops")
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    bh, bw = round(h * 256 / 224), round(w * 256 / 224)  # AlexNet's 224 out of 256
    big = resize_uint8(x, (bh, bw))
    expected = [big[..., :h, :w], big[..., :h, bw - w :], big[..., bh - h :, :w], big[..., bh - h :, bw - w :],
                big[..., (bh - h) // 2 : (bh - h) // 2 + h, (bw - w) // 2 : (bw - w) // 2 + w]]  # fmt: skip
    for got, want in zip(views[:5], expected, strict=True):
        assert torch.equal(got, want)
    for got, want in zip(views[5:], expected, strict=True):
        assert torch.equal(got, torch.flip(want, dims=[-1]))
    assert len({v.float().sum().item() for v in views[:5]}) > 1  # the crops really differ


@pytest.mark.parametrize("mode", ["flip", "flip+shift", "crops"])
def test_tta_probabilities_are_the_mean_over_the_views(run_and_images, mode):
    run, x = run_and_images
    got = predict_probs(run, x, tta=mode)
    per_view = [predict_logits(run, v.contiguous()).double().softmax(1) for v in tta_views(x, mode)]
    torch.testing.assert_close(got, torch.stack(per_view).mean(0), rtol=0, atol=1e-12)
    # Averaging did something: the TTA answer is not the plain one.
    assert not torch.allclose(got, predict_probs(run, x), atol=1e-4)
    torch.testing.assert_close(got.sum(1), torch.ones(len(x), dtype=torch.float64))


def test_unknown_tta_mode_is_a_clear_error(trained_run):
    with pytest.raises(ConfigError, match="unknown test-time augmentation 'rotate'"):
        evaluate_run(trained_run, tta="rotate", write=False)


def test_ensemble_of_two_runs_averages_their_probabilities(short_runs):
    a, b = short_runs
    m = evaluate_run(a, ensemble=[b])
    ra, rb = load_run(a), load_run(b)
    test = run_data(ra).test
    pa, pb = predict_probs(ra, test.images), predict_probs(rb, test.images)
    mean = ((pa + pb) / 2).numpy()
    y = test.labels.numpy()
    assert m["acc"] == pytest.approx(float((mean.argmax(1) == y).mean()), abs=1e-12)
    assert m["loss"] == pytest.approx(float(-np.log(mean[np.arange(len(y)), y]).mean()), abs=1e-9)
    assert m["ensemble"] == [str(b)] and m["n"] == len(y)
    # The ensemble costs both models.
    assert m["params"] == sum(p.numel() for r in (ra, rb) for p in r.model.parameters())
    out = a / "eval" / "test-ensemble2"
    assert m["out_dir"] == str(out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["acc"] == m["acc"] and (out / "report.html").is_file()
    assert not (a / "eval" / "test" / "metrics.json").exists()  # the plain evaluation is not overwritten


def test_ensemble_refuses_runs_with_other_classes(short_runs, tmp_path):
    a, b = short_runs
    other = tmp_path / "other"
    shutil.copytree(b, other)
    side = json.loads((other / "best.json").read_text())
    side["classes"] = [f"digit-{c}" for c in side["classes"]]
    (other / "best.json").write_text(json.dumps(side))
    with pytest.raises(CheckpointError, match="class lists differ") as e:
        evaluate_run(a, ensemble=[other], write=False)
    assert "'0' vs 'digit-0'" in e.value.message and "same classes" in e.value.hint


def test_ensemble_refuses_a_run_trained_on_the_test_images(short_runs, tmp_path):
    a, b = short_runs
    leaky = tmp_path / "leaky"
    shutil.copytree(b, leaky)
    split = json.loads((leaky / "split.json").read_text())
    split["train"].append(split["test"][0])  # as if trained with another seed/split
    (leaky / "split.json").write_text(json.dumps(split))
    with pytest.raises(CheckpointError, match="trained or validated on 1 of the 270 test images"):
        evaluate_run(a, ensemble=[leaky], write=False)
    # The validation split of every member is the same images: an ensemble can be scored there.
    m = evaluate_run(a, ensemble=[leaky], split="val", write=False)
    assert m["split"] == "val" and m["n"] > 0
