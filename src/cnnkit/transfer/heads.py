"""Classical classifiers on CNN features: the lecture's "use external classifier: e.g. SVM, k-NN".

Features are standardised (zero mean, unit variance per dimension, statistics from the training rows)
because SVMs, k-NN and logistic regression all assume comparable scales, and ReLU features are not.
Hyper-parameters are fixed defaults, never tuned on the test rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .features import SPLITS, FeatureSet

CLASSIFIERS = ("svm", "knn", "logreg")


def make_head(classifier: str = "svm", c: float = 1.0, k: int = 5, seed: int = 0) -> Any:
    """A scikit-learn pipeline: standardisation, then a linear SVM, k-NN or logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if classifier == "svm":
        # A linear SVM, as on "CNN features off-the-shelf" (Razavian et al. 2014): the features already
        # did the non-linear work.
        est = SVC(kernel="linear", C=c, random_state=seed)
    elif classifier == "knn":
        est = KNeighborsClassifier(n_neighbors=k)
    elif classifier == "logreg":
        est = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    else:
        raise ConfigError(f"--classifier {classifier!r} is not allowed", hint="use " + ", ".join(CLASSIFIERS))
    return make_pipeline(StandardScaler(), est)


@dataclass
class HeadResult:
    """What :func:`fit_head` measured."""

    classifier: str
    fit_on: list[str]
    n_fit: int
    accuracy: dict[str, float] = field(default_factory=dict)  # per evaluated split
    n_eval: dict[str, int] = field(default_factory=dict)
    model: Any = None

    @property
    def test_accuracy(self) -> float:
        return self.accuracy.get("test", float("nan"))

    def to_dict(self) -> dict[str, Any]:
        return {"classifier": self.classifier, "fit_on": self.fit_on, "n_fit": self.n_fit, "accuracy": self.accuracy,
                "n": self.n_eval}  # fmt: skip


def fit_head(
    features: FeatureSet | str | Path,
    classifier: str = "svm",
    *,
    fit_on: tuple[str, ...] | list[str] = ("train",),
    evaluate_on: tuple[str, ...] | list[str] = ("val", "test"),
    c: float = 1.0,
    k: int = 5,
    seed: int = 0,
) -> HeadResult:
    """Fit ``classifier`` (``svm``, ``knn`` or ``logreg``) on the ``fit_on`` rows, report accuracy per split.

    ``features`` is a :class:`FeatureSet` or an ``.npz`` written by ``cnnkit features``. Splits with no
    rows are skipped. For k-NN, ``k`` is capped at the number of training rows.
    """
    if not (c > 0 and math.isfinite(c)):
        raise ConfigError(f"--C must be a positive finite number, got {c:g}")
    if k < 1:
        raise ConfigError(f"-k must be >= 1, got {k}")
    bad = [s for s in (*fit_on, *evaluate_on) if s not in SPLITS]
    if bad or not fit_on:
        raise ConfigError(f"unknown split {bad[0] if bad else '(none)'!r} in --fit-on", hint="use train, val and/or test")
    fs = features if isinstance(features, FeatureSet) else FeatureSet.load(features)
    x, y = fs.part(*fit_on)
    if len(x) == 0:
        raise DataError(f"no rows of split {', '.join(fit_on)} in the feature file",
                        hint="extract them (cnnkit features --splits train,val,test)")  # fmt: skip
    if len(np.unique(y)) < 2:
        raise DataError("the training rows hold a single class: nothing to classify")
    head = make_head(classifier, c, min(k, len(x)), seed).fit(x, y)
    result = HeadResult(classifier, list(fit_on), int(len(x)), model=head)
    # A split the head was fitted on says nothing about accuracy: scoring it would report e.g. a
    # "100% test accuracy" for --fit-on test.
    for s in (s for s in evaluate_on if s not in fit_on):
        xs, ys = fs.part(s)
        if len(xs):
            result.accuracy[s] = float((head.predict(xs) == ys).mean())
            result.n_eval[s] = int(len(xs))
    return result
