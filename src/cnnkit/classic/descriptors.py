"""Hand-crafted image descriptors and scikit-learn classifiers: the pre-CNN baseline pipeline.

Seed 000's pipeline: extract features ("a set of values that measure the (dis)similarity between
images", e.g. the two most frequent colours for desert vs beach; colour, shape and texture
descriptors; histograms of gradients) and train a classifier (linear, SVM, k-NN) on them. HOG and
LBP come from scikit-image, the classifiers from scikit-learn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, suggest
from .datasets import ClassicSplit, load_classic_dataset

# ----------------------------------------------------------------------------------------------
# Descriptors: one image (H, W) or (H, W, 3) in [0, 1] -> a 1-D feature vector
# ----------------------------------------------------------------------------------------------


def _rgb(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        return np.repeat(x[..., None], 3, axis=2)  # grey as R = G = B, so colour features still apply
    if x.ndim == 3 and x.shape[2] in (3, 4):
        return x[..., :3]
    raise DataError(f"expected an (H, W) or (H, W, 3) image, got shape {x.shape}")


def _gray(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        return x
    if x.ndim == 3 and x.shape[2] in (3, 4):
        return x[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's "L"
    raise DataError(f"expected an (H, W) or (H, W, 3) image, got shape {x.shape}")


def _quantise(image: np.ndarray, bins: int) -> np.ndarray:
    """Colour index in ``[0, bins^3)`` per pixel: each of R, G, B cut into ``bins`` equal levels."""
    if bins < 1:
        raise ConfigError(f"bins must be >= 1, got {bins}")
    q = np.clip((_rgb(image) * bins).astype(np.int64), 0, bins - 1)
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def two_colors(image: np.ndarray, bins: int = 4) -> np.ndarray:
    """The two most frequent colours (seed 000, desert vs beach): ``(r1, g1, b1, r2, g2, b2)``.

    Colours are quantised to ``bins`` levels per channel (``bins^3`` colours) so that "the same
    colour" means something on natural images; each of the two is reported by its bin centre,
    most frequent first. An image with a single colour repeats it.
    """
    counts = np.bincount(_quantise(image, bins).ravel(), minlength=bins**3)
    order = np.argsort(-counts, kind="stable")  # ties broken by colour index: deterministic
    top = order[:2] if counts[order[1]] > 0 else order[[0, 0]]
    r, g, b = top // (bins * bins), (top // bins) % bins, top % bins
    return (np.stack([r, g, b], axis=1).astype(np.float64).ravel() + 0.5) / bins


def color_histogram(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """Normalised joint RGB histogram (``bins^3`` cells); a 2-D grey image gets a ``bins``-cell one.

    (A grey image as RGB would only fill the ``bins`` diagonal cells of the joint histogram.)
    """
    x = np.asarray(image)
    if x.ndim == 2:
        if bins < 1:
            raise ConfigError(f"bins must be >= 1, got {bins}")
        idx = np.clip((x.astype(np.float64) * bins).astype(np.int64), 0, bins - 1)
        counts = np.bincount(idx.ravel(), minlength=bins).astype(np.float64)
    else:
        counts = np.bincount(_quantise(x, bins).ravel(), minlength=bins**3).astype(np.float64)
    return counts / counts.sum()


def hog_features(image: np.ndarray, cells: int = 4, orientations: int = 9, block: int = 2) -> np.ndarray:
    """Histogram of oriented gradients (Dalal & Triggs 2005) via ``skimage.feature.hog``.

    The image is cut into about ``cells x cells`` cells whatever its size (2x2-pixel cells on 8x8
    digits); block-normalised (L2-Hys) over ``block x block`` cells.
    """
    from skimage.feature import hog

    g = _gray(image)
    ppc = (max(1, g.shape[0] // cells), max(1, g.shape[1] // cells))
    return hog(
        g,
        orientations=orientations,
        pixels_per_cell=ppc,
        cells_per_block=(block, block),
        block_norm="L2-Hys",
        feature_vector=True,
    )


def lbp_features(image: np.ndarray, points: int = 8, radius: float = 1.0, grid: int = 2) -> np.ndarray:
    """Local binary patterns (Ojala et al. 2002): histograms of rotation-invariant uniform codes.

    One ``points + 2``-bin histogram per cell of a ``grid x grid`` partition (Ahonen et al.'s
    spatial LBP), concatenated: a global histogram alone forgets where the texture is.
    """
    from skimage.feature import local_binary_pattern

    g = np.round(_gray(image) * 255).astype(np.uint8)  # LBP compares grey levels; integers avoid float ties
    codes = local_binary_pattern(g, points, radius, method="uniform")  # values 0 .. points + 1
    n_bins = points + 2
    feats = []
    for rows in np.array_split(np.arange(g.shape[0]), grid):
        for cols in np.array_split(np.arange(g.shape[1]), grid):
            cell = codes[np.ix_(rows, cols)]
            h = np.bincount(cell.astype(np.int64).ravel(), minlength=n_bins).astype(np.float64)
            feats.append(h / max(cell.size, 1))
    return np.concatenate(feats)


def pixel_features(image: np.ndarray) -> np.ndarray:
    """Raw pixels, flattened: the "no hand-crafted features" input of a neural network."""
    return np.asarray(image, dtype=np.float64).ravel()


FEATURES: dict[str, Callable[..., np.ndarray]] = {
    "hog": hog_features,
    "lbp": lbp_features,
    "pixels": pixel_features,
    "colorhist": color_histogram,
    "two-colors": two_colors,
}
"""Feature name -> function of one image returning a 1-D vector."""


def extract_features(images: np.ndarray, name: str, **params: Any) -> np.ndarray:
    """Stack the ``name`` descriptor of every image into an ``(N, D)`` matrix."""
    if name not in FEATURES:
        raise ConfigError(f"unknown features {name!r}", hint=suggest(name, FEATURES))
    if len(images) == 0:
        raise DataError("no images to extract features from")
    fn = FEATURES[name]
    return np.stack([fn(im, **params) for im in images])


# ----------------------------------------------------------------------------------------------
# Classifiers
# ----------------------------------------------------------------------------------------------

CLASSIFIERS = ("svm", "linear-svm", "logreg", "knn")


def make_classifier(name: str, seed: int = 0) -> Any:
    """A scikit-learn estimator by name: ``svm`` (RBF SVC), ``linear-svm``, ``logreg``, ``knn``.

    Linear models and the RBF SVM see standardised features (their regularisation and kernel width
    assume comparable feature scales). k-NN does not: standardising would up-weight near-constant
    features (e.g. the always-blank border pixels of digits) in its distance.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if name == "svm":
        return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0, gamma="scale", random_state=seed))
    if name == "linear-svm":
        return make_pipeline(StandardScaler(), LinearSVC(C=0.1, max_iter=20000, random_state=seed))
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed))
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=5)
    raise ConfigError(f"unknown classifier {name!r}", hint=suggest(name, CLASSIFIERS))


@dataclass
class BaselineResult:
    """Outcome of :func:`run_baseline` (times in seconds)."""

    data: str
    features: str
    classifier: str
    seed: int
    accuracy: float
    feature_dim: int
    n_train: int
    n_test: int
    feature_time: float
    train_time: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.data}: {self.features} + {self.classifier}: test accuracy {self.accuracy:.2%} "
            f"({self.n_test} test images, trained on {self.n_train}; feature dim {self.feature_dim}; "
            f"features {self.feature_time:.2f} s, training {self.train_time:.2f} s)"
        )


def run_baseline(
    data: str | ClassicSplit = "digits",
    features: str = "hog",
    classifier: str = "svm",
    seed: int = 0,
    test_split: float = 0.15,
    val_split: float = 0.15,
    image_size: int | tuple[int, int] = 64,
) -> BaselineResult:
    """Features + classifier, trained on train + val and scored on the held-out test split.

    The classical models here have no early stopping or tuned hyper-parameters, so the validation
    split has nothing to select and is folded into training (85% of the data by default); the test
    split is the same one a CNN trained with this seed is scored on (see :mod:`.datasets`).
    ``image_size`` applies to ``folder:`` data (resized so every image has the same feature length).
    """
    # Validate names before the (possibly slow) loading and feature extraction.
    if features not in FEATURES:
        raise ConfigError(f"unknown features {features!r}", hint=suggest(features, FEATURES))
    model = make_classifier(classifier, seed)
    split = (
        data
        if isinstance(data, ClassicSplit)
        else load_classic_dataset(
            data, seed=seed, val_split=val_split, test_split=test_split, image_size=image_size
        )
    )
    n_cls = len(np.unique(split.y_trainval))
    if n_cls < 2:  # sklearn refuses one class; a "100%" classifier of nothing would be worse
        raise DataError(
            f"{split.name}: the training images ({len(split.y_trainval)}) hold {n_cls} class(es); need at least 2",
            hint="add images to every class folder",
        )
    t0 = time.perf_counter()
    x_train = extract_features(split.x_trainval, features)
    x_test = extract_features(split.x_test, features)
    t1 = time.perf_counter()
    model.fit(x_train, split.y_trainval)
    t2 = time.perf_counter()
    accuracy = float((model.predict(x_test) == split.y_test).mean())
    return BaselineResult(
        split.name,
        features,
        classifier,
        seed,
        accuracy,
        x_train.shape[1],
        len(x_train),
        len(x_test),
        t1 - t0,
        t2 - t1,
    )
