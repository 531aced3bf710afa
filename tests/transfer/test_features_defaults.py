"""``features`` takes its defaults from the one resolution of a run's options, and they make ``--pca`` work.

The README pair ``cnnkit features RUN --layer features --data digits -o feats.npz --pca 32`` then
``cnnkit fit-head feats.npz`` used to fail: LeNet-5's last conv block averaged per channel leaves 16
numbers, fewer than 32 components. ``--pool auto`` (the default) averages over a grid of regions when
the reduction needs more numbers than the layer has channels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.cli import main
from cnnkit.run import load_run
from cnnkit.transfer import FeatureSet, extract_features
from cnnkit.transfer.features import auto_pool


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """LeNet-5 trained on digits for one epoch: enough for features that classify well above chance."""
    runs = tmp_path_factory.mktemp("one-epoch")
    return cnnkit.train(name="demo", runs_dir=str(runs), epochs=1, quiet=True).run_dir


def test_features_with_pca_then_fit_head(one_epoch_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["features", str(one_epoch_run), "--layer", "features", "--data", "digits", "-o", "feats.npz",
                 "--pca", "32"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "dimension 32" in out and "pooling avg:2" in out  # 16 channels x 2 x 2 regions = 64 numbers
    fs = FeatureSet.load(tmp_path / "feats.npz")
    assert fs.dim == 32 and fs.meta["pool"] == "avg:2" and fs.meta["pca"]["components"] == 32
    assert 0.5 < fs.meta["pca"]["explained_variance"] <= 1.0
    code = main(["fit-head", "feats.npz", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    acc = json.loads(out)["accuracy"]
    assert acc["test"] > 0.5 and acc["val"] > 0.5  # ten classes: chance is 10%


def test_auto_pool_is_the_channel_average_unless_the_reduction_needs_more(one_epoch_run):
    run = load_run(one_epoch_run)
    x = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    mean, std = tuple(run.meta.mean), tuple(run.meta.std)
    assert auto_pool(run.model, x, mean, std, "features", 0) == "avg"  # no reduction: one number per channel
    assert auto_pool(run.model, x, mean, std, "features", 16) == "avg"  # 16 channels are enough
    assert auto_pool(run.model, x, mean, std, "features", 64) == "avg:2"
    assert auto_pool(run.model, x, mean, std, "features", 300) == "avg:5"  # the whole 5x5 map: 400 numbers
    assert auto_pool(run.model, x, mean, std, "features", 1000) == "flatten"  # no grid is enough
    assert auto_pool(run.model, x, mean, std, None, 1000) == "avg"  # a vector layer has nothing to pool
    # Without a reduction the default is the per-channel average, as before.
    fs = extract_features(one_epoch_run, layer="features", splits=["test"])
    assert fs.dim == 16 and fs.meta["pool"] == "avg"
    grid = extract_features(one_epoch_run, layer="features", pool="avg:2", splits=["test"])
    assert grid.dim == 64
    with torch.no_grad():
        from cnnkit.data import Normalize
        from cnnkit.evaluate import run_data

        images = run_data(run).test.images[:3]
        maps = run.model.features(Normalize(mean, std)(images))
    want = torch.nn.functional.adaptive_avg_pool2d(maps, 2).flatten(1).numpy()
    assert np.allclose(grid.features[:3], want, atol=1e-5)


def test_other_data_is_split_and_sized_as_the_run_was(one_epoch_run):
    """``--data`` for a run: the run's seed and split fractions, its input size and channels (one resolution)."""
    fs = extract_features(one_epoch_run, "digits", splits=["train", "val", "test"])
    own = extract_features(one_epoch_run, splits=["train", "val", "test"])
    for s in ("train", "val", "test"):
        assert list(fs.ids[fs.mask(s)]) == list(own.ids[own.mask(s)])
    assert np.allclose(fs.features, own.features, atol=1e-5)


def test_a_missing_run_path_is_named_not_looked_up_as_a_model(tmp_path, capsys):
    code = main(["features", str(tmp_path / "runs" / "nope"), "-o", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err
    assert code != 0 and "does not exist" in err and "neither a run folder nor a model name" in err
    assert "Traceback" not in err
