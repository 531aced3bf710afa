"""Hand-crafted descriptors, classifiers, baselines and the small dataset loader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.classic import datasets as D
from cnnkit.classic import descriptors as X
from cnnkit.errors import ConfigError, DataError

SKY, SAND, SEA = (0.55, 0.75, 0.95), (0.9, 0.75, 0.45), (0.05, 0.25, 0.6)


def scene(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A synthetic 'desert' (sky over sand) or 'beach' (sky, sea, a strip of sand) photo."""
    img = np.empty((size, size, 3))
    sky = int(size * rng.uniform(0.3, 0.45))
    img[:sky] = SKY
    if kind == "desert":
        img[sky:] = SAND
    else:
        sea = int(size * rng.uniform(0.75, 0.85))
        img[sky:sea], img[sea:] = SEA, SAND
    img += rng.uniform(-0.05, 0.05, 3)  # colour cast per photo
    img += rng.normal(0, 0.02, img.shape)  # sensor noise
    return np.clip(img, 0, 1)


@pytest.fixture(scope="module")
def desert_beach(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("desert_beach")
    rng = np.random.default_rng(0)
    for kind in ("beach", "desert"):
        (root / kind).mkdir()
        for i in range(30):
            Image.fromarray(np.round(scene(kind, rng) * 255).astype(np.uint8)).save(
                root / kind / f"{i:02d}.png"
            )
    (root / "desert" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    return str(root)


def test_two_most_frequent_colours():
    img = np.zeros((10, 10, 3))
    img[:6] = (0.9, 0.1, 0.1)  # 60% red
    img[6:9] = (0.1, 0.1, 0.9)  # 30% blue
    img[9:] = (0.1, 0.9, 0.1)  # 10% green
    f = X.two_colors(img, bins=4)
    np.testing.assert_allclose(f, [0.875, 0.125, 0.125, 0.125, 0.125, 0.875])  # red centre, then blue
    np.testing.assert_allclose(X.two_colors(np.full((4, 4, 3), 0.3)), [0.375] * 6)  # one colour: repeated


def test_descriptor_shapes_and_normalisation():
    g = np.random.default_rng(1).random((8, 8))
    assert X.hog_features(g).shape == (324,)  # 4x4 cells of 2x2 px, 3x3 blocks of 2x2 cells, 9 bins
    assert X.lbp_features(g).shape == (40,) and X.lbp_features(g).sum() == pytest.approx(4.0)
    assert X.color_histogram(g, bins=8).shape == (8,) and X.color_histogram(g).sum() == pytest.approx(1.0)
    rgb = np.random.default_rng(2).random((16, 12, 3))
    assert X.color_histogram(rgb, bins=4).shape == (64,) and X.color_histogram(rgb, 4).sum() == pytest.approx(
        1.0
    )
    assert X.pixel_features(rgb).shape == (16 * 12 * 3,)
    assert X.extract_features(np.stack([g, g]), "hog").shape == (2, 324)


def test_hog_and_lbp_see_structure():
    # HOG: vertical vs horizontal stripes put their energy in different orientation bins.
    v = np.tile([0.0, 0.0, 1.0, 1.0], (16, 4))
    assert np.abs(X.hog_features(v) - X.hog_features(v.T)).max() > 0.1
    # LBP: on a flat image every interior pixel has the "all neighbours >= centre" code P = 8
    # (skimage pads with zeros, so the 36 border pixels of 10x10 get other codes).
    flat = X.lbp_features(np.full((10, 10), 0.5), grid=1)
    assert flat.argmax() == 8 and flat.max() == pytest.approx(64 / 100)


# The README's table of classic pipelines on the digits test split (270 images, seed 0). libsvm and
# scikit-learn's logistic regression are deterministic, so the exact counts are pinned: one image is
# 0.37 points, and raw pixels alone already reach 96.30%, so a loose "> 90%" could not catch a
# broken descriptor.


def test_baseline_hog_svm_on_digits():
    r = X.run_baseline("digits", "hog", "svm", seed=0)
    assert (r.n_train, r.n_test, r.feature_dim) == (1797 - 270, 270, 324)
    assert round(r.accuracy * r.n_test) == 264, r  # README: HOG + RBF SVM 97.78%
    assert round(100 * r.accuracy, 2) == 97.78


def test_baseline_pixels_logreg_on_digits():
    r = X.run_baseline("digits", "pixels", "logreg", seed=0)
    assert r.feature_dim == 64 and "test accuracy" in str(r)
    assert round(r.accuracy * r.n_test) == 260, r  # README: raw pixels + logistic regression 96.30%
    assert round(100 * r.accuracy, 2) == 96.30


def test_baseline_lbp_svm_on_digits():
    r = X.run_baseline("digits", "lbp", "svm", seed=0)
    assert round(r.accuracy * r.n_test) == 210, r  # README: LBP + RBF SVM 77.78%
    assert round(100 * r.accuracy, 2) == 77.78


def test_two_colours_separate_desert_from_beach(desert_beach):
    # Seed 000's motivating example: two most frequent colours + a simple classifier.
    r = X.run_baseline(f"folder:{desert_beach}", "two-colors", "knn", seed=0, image_size=32)
    assert r.feature_dim == 6 and r.n_test == 9
    assert r.accuracy >= 0.85, r
    split = D.load_classic_dataset(f"folder:{desert_beach}", image_size=32)
    assert split.classes == ["beach", "desert"] and split.x_train.shape[1:] == (32, 32, 3)


def test_stratified_split_sizes_and_seed():
    d0, d0b, d1 = (D.load_classic_dataset("digits", seed=s) for s in (0, 0, 1))
    assert (len(d0.y_train), len(d0.y_val), len(d0.y_test)) == (1257, 270, 270)
    np.testing.assert_array_equal(d0.y_test, d0b.y_test)
    assert not np.array_equal(d0.x_test, d1.x_test)
    # Stratified: every class is within one image of its share of the test set.
    share = np.bincount(d0.y_train, minlength=10) / len(d0.y_train)
    assert np.abs(np.bincount(d0.y_test, minlength=10) - share * 270).max() <= 1.5
    assert d0.x_train.min() >= 0 and d0.x_train.max() == 1.0


def test_split_matches_cnnkit_data_when_available():
    data = pytest.importorskip("cnnkit.data")
    if not hasattr(data, "load_dataset"):
        pytest.skip("cnnkit.data.load_dataset not available")
    ours = D.load_classic_dataset("digits", seed=0)
    theirs = data.load_dataset("digits", seed=0)
    ids = sorted(int(i.split("/")[1]) for i in theirs.test.ids)  # "digits/<index in load_digits()>"
    from sklearn.datasets import load_digits

    _, _, test_idx = D.stratified_indices(load_digits().target, 0.15, 0.15, 0)
    assert ids == sorted(test_idx.tolist())
    np.testing.assert_array_equal(np.sort(ours.y_test), np.sort(theirs.test.labels.numpy()))


def test_bad_names_and_folders(tmp_path):
    with pytest.raises(ConfigError, match="'hgo'") as ei:
        X.run_baseline("digits", "hgo", "svm")
    assert "hog" in ei.value.hint
    with pytest.raises(ConfigError, match="'svn'") as ei:
        X.make_classifier("svn")
    assert "svm" in ei.value.hint
    with pytest.raises(DataError, match="'digitz'"):
        D.load_classic_dataset("digitz")
    with pytest.raises(DataError, match="not found"):
        D.load_classic_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "only_class").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "only_class" / "a.png")
    with pytest.raises(DataError, match="need at least 2"):
        D.load_classic_dataset(f"folder:{tmp_path}")
    (tmp_path / "only_class" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        D.read_image(tmp_path / "only_class" / "broken.png")
