"""Feature extraction (any layer, pooled or flattened), PCA, product quantisation, classical heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.data import Normalize
from cnnkit.errors import ConfigError, DataError
from cnnkit.evaluate import run_data
from cnnkit.run import load_run
from cnnkit.transfer import FeatureSet, ProductQuantizer, extract_features, fit_head


def test_features_match_the_layers_own_output_with_labels_split_and_ids(source_04):
    fs = extract_features(source_04)  # default: the input of the final classifier layer, FC-84 after ReLU
    run = load_run(source_04)
    ds = run_data(run)
    assert fs.features.shape == (len(ds.train) + len(ds.val) + len(ds.test), 84)
    assert list(fs.ids[fs.mask("test")]) == ds.test.ids
    assert np.array_equal(fs.labels[fs.mask("test")], ds.test.labels.numpy())
    x = Normalize(run.meta.mean, run.meta.std)(ds.test.images[:7])
    with torch.no_grad():
        want_penultimate = run.model.forward_head(run.model.forward_features(x), pre_logits=True)
        want_conv = run.model.features(x)
        want_conv2 = run.model.features[:4](x).mean((2, 3))
    assert np.allclose(fs.features[fs.mask("test")][:7], want_penultimate.numpy(), atol=1e-5)
    conv = extract_features(source_04, layer="features.3", splits=["test"])  # conv2 map, averaged per channel
    assert conv.dim == 16 and np.allclose(conv.features[:7], want_conv2.numpy(), atol=1e-5)
    flat = extract_features(source_04, layer="features", pool="flatten", splits=["test"])
    assert np.allclose(flat.features[:7], want_conv.flatten(1).numpy(), atol=1e-5)
    with pytest.raises(Exception, match="no layer 'feature'"):
        extract_features(source_04, layer="feature")


def test_pca_and_pq_are_fitted_on_train_and_round_trip_through_npz(source_04, tmp_path):
    fs = extract_features(source_04, pca=12)
    assert fs.dim == 12 and 0 < fs.meta["pca"]["explained_variance"] <= 1
    train = fs.features[fs.mask("train")]
    assert np.allclose(train.mean(0), 0, atol=1e-3)  # centred on the training rows, not on all rows
    pq = extract_features(source_04, pq=6, pq_bits=4)
    assert pq.codes.shape == (len(pq), 6) and pq.codes.dtype == np.uint8 and pq.codes.max() < 16
    assert pq.meta["pq"]["bytes_per_vector"] == 6 and pq.meta["pq"]["relative_error"] < 0.5
    path = pq.save(tmp_path / "f.npz")
    back = FeatureSet.load(path)
    assert np.array_equal(back.codes, pq.codes) and back.classes == pq.classes and back.meta == pq.meta
    assert np.allclose(ProductQuantizer.from_state(back.pq_state).decode(back.codes), back.features)
    with pytest.raises(ConfigError, match="--pca 500 is out of range"):
        extract_features(source_04, pca=500)
    with pytest.raises(DataError, match="does not exist"):
        FeatureSet.load(tmp_path / "missing.npz")


def test_product_quantizer_search_equals_exhaustive_search_on_decoded_vectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10)).astype(np.float32)
    q = rng.normal(size=(20, 10)).astype(np.float32)
    pq = ProductQuantizer(m=3, bits=4, seed=0).fit(x)  # 10 dims in sub-vectors of 4, 3, 3
    codes = pq.encode(x)
    assert [b - a for a, b in pq.bounds] == [4, 3, 3]
    idx, d = pq.search(q, codes, k=5)
    dec = pq.decode(codes)
    brute = ((q[:, None, :] - dec[None]) ** 2).sum(-1)
    assert np.allclose(d, np.sort(brute, 1)[:, :5], atol=1e-4)
    assert np.allclose(np.take_along_axis(brute, idx, 1), d, atol=1e-4)
    # With as many centroids as distinct points, quantisation is lossless.
    few = rng.normal(size=(8, 6)).astype(np.float32)
    exact = ProductQuantizer(m=2, bits=3).fit(few)
    assert np.allclose(exact.decode(exact.encode(few)), few, atol=1e-5)


def test_fit_head_reports_accuracy_per_split(digits_run):
    fs = extract_features(digits_run)
    for clf in ("svm", "knn", "logreg"):
        r = fit_head(fs, clf)
        assert r.n_fit == int(fs.mask("train").sum()) and set(r.accuracy) == {"val", "test"}
        assert r.test_accuracy > 0.9, (clf, r.accuracy)  # features of a ~97% network
    one = FeatureSet(fs.features[:5], np.zeros(5, dtype=np.int64), np.array(["train"] * 5), fs.ids[:5], fs.classes)
    with pytest.raises(DataError, match="single class"):
        fit_head(one)
    with pytest.raises(ConfigError, match="--classifier 'tree'"):
        fit_head(fs, "tree")
