"""Every metric of cnnkit.evaluate.metrics against scikit-learn on the same predictions (to 1e-6).

Two sets of predictions: synthetic ones built to hit the edge cases (ties between scores, a class
that is never predicted, very confident mistakes), and the real predictions of the trained digits run.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from cnnkit.evaluate import metrics as M

TOL = 1e-6


def synthetic(seed: int = 0, n: int = 600, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class has support
    logits = rng.normal(size=(n, k)) + 2.5 * np.eye(k)[y]  # better than chance, far from perfect
    logits[:, k - 1] -= 8.0  # the last class is (almost) never the arg-max: precision 0/0 -> 0
    logits[:20] = logits[20:40]  # duplicated rows: tied scores inside every PR/ROC curve
    probs = M.softmax(logits)
    probs[40:45] = np.eye(k)[(y[40:45] + 1) % k] * (1 - 1e-9) + 1e-9 / k  # confidently wrong
    probs /= probs.sum(1, keepdims=True)
    return probs, y


def check_against_sklearn(probs: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    k = len(classes)
    labels = list(range(k))
    pred = probs.argmax(1)
    got = M.classification_metrics(probs, y, classes)

    cm = skm.confusion_matrix(y, pred, labels=labels)
    np.testing.assert_array_equal(M.confusion_matrix(y, pred, k), cm)

    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    pc = got["per_class"]
    for name, ref in (("precision", p), ("recall", r), ("f1", f)):
        np.testing.assert_allclose([row[name] for row in pc], ref, atol=TOL, err_msg=name)
    np.testing.assert_array_equal([row["support"] for row in pc], s)
    for avg in ("macro", "weighted"):
        ap_, ar_, af_, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        assert got[avg]["precision"] == pytest.approx(ap_, abs=TOL)
        assert got[avg]["recall"] == pytest.approx(ar_, abs=TOL)
        assert got[avg]["f1"] == pytest.approx(af_, abs=TOL)

    # Specificity has no scikit-learn function: count TN and FP image by image, from the definition.
    spec = []
    for c in range(k):
        tn = sum(1 for t, q in zip(y, pred, strict=True) if t != c and q != c)
        fp = sum(1 for t, q in zip(y, pred, strict=True) if t != c and q == c)
        spec.append(tn / (tn + fp) if tn + fp else 0.0)
        assert (pc[c]["tn"], pc[c]["fp"]) == (tn, fp)
    np.testing.assert_allclose([row["specificity"] for row in pc], spec, atol=TOL)
    assert got["macro"]["specificity"] == pytest.approx(np.mean(spec), abs=TOL)
    assert got["weighted"]["specificity"] == pytest.approx(np.average(spec, weights=s), abs=TOL)

    assert got["acc"] == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
    assert got["top5"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=min(5, k), labels=labels), abs=TOL)
    for kk in (1, 2, 3):
        assert M.topk_accuracy(probs, y, kk) == pytest.approx(skm.top_k_accuracy_score(y, probs, k=kk, labels=labels), abs=TOL)
    assert got["loss"] == pytest.approx(skm.log_loss(y, y_proba=probs, labels=labels), abs=TOL)

    onehot = np.eye(k)[y]
    ap_ref = [skm.average_precision_score(onehot[:, c], probs[:, c]) for c in range(k)]
    np.testing.assert_allclose([row["ap"] for row in pc], ap_ref, atol=TOL)
    assert got["map"] == pytest.approx(skm.average_precision_score(onehot, probs, average="macro"), abs=TOL)
    auc_ref = [skm.roc_auc_score(onehot[:, c], probs[:, c]) for c in range(k)]
    np.testing.assert_allclose([row["roc_auc"] for row in pc], auc_ref, atol=TOL)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", labels=labels), abs=TOL)

    # PR curve points: scikit-learn lists them from the lowest threshold, we from the highest.
    for c in range(k):
        prec, rec, thr = M.pr_curve(y == c, probs[:, c])
        sp, sr, st = skm.precision_recall_curve(y == c, probs[:, c])
        np.testing.assert_allclose(prec[::-1], sp[:-1], atol=TOL)
        np.testing.assert_allclose(rec[::-1], sr[:-1], atol=TOL)
        np.testing.assert_allclose(thr[::-1], st, atol=0)

    # ECE from scikit-learn's reliability curve (uniform bins) weighted by the images per bin.
    conf, correct = probs.max(1), (pred == y).astype(float)
    acc_b, conf_b = calibration_curve(correct, conf, n_bins=15, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 16)[1:-1], conf), minlength=15)
    counts = counts[counts > 0]
    assert got["ece"] == pytest.approx(np.sum(counts / len(y) * np.abs(acc_b - conf_b)), abs=TOL)
    return got


def test_metrics_match_sklearn_on_synthetic_edge_cases():
    probs, y = synthetic()
    got = check_against_sklearn(probs, y, [f"c{i}" for i in range(probs.shape[1])])
    pc = got["per_class"]
    assert pc[-1]["tp"] + pc[-1]["fp"] == 0 and pc[-1]["precision"] == 0.0  # the zero-division case was hit
    assert 0.3 < got["acc"] < 0.95  # not a trivial all-right or all-wrong case


def test_metrics_match_sklearn_on_the_trained_runs_predictions(trained_run):
    from cnnkit.evaluate import predict_probs, run_data
    from cnnkit.run import load_run

    run = load_run(trained_run)
    test = run_data(run).test
    probs = predict_probs(run, test.images).numpy()
    check_against_sklearn(probs, test.labels.numpy(), run.classes)


def test_most_confused_and_top_losses_from_their_definitions():
    probs, y = synthetic(seed=1, n=300, k=5)
    classes = list("abcde")
    cm = skm.confusion_matrix(y, probs.argmax(1), labels=range(5))
    pairs = M.most_confused(cm, classes, n=3)
    off = [(cm[i, j], i, j) for i in range(5) for j in range(5) if i != j]
    biggest = sorted(off, reverse=True)[:3]
    assert [p["count"] for p in pairs] == [c for c, _, _ in biggest]
    assert all(cm[classes.index(p["true"]), classes.index(p["pred"])] == p["count"] for p in pairs)
    idx = M.top_losses(probs, y, n=10)
    losses = -np.log(probs[np.arange(len(y)), y])
    np.testing.assert_allclose(losses[idx], np.sort(losses)[::-1][:10])
    assert set(range(40, 45)) <= set(idx.tolist())  # the confidently wrong rows rank among the worst


def test_count_macs_on_a_hand_counted_model():
    from torch import nn

    from cnnkit.evaluate import count_macs
    from cnnkit.evaluate.complexity import layer_table as hook_layer_table

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 4))
    # conv: 3x3 outputs x 2 channels x (1 input channel x 3x3 kernel) = 162; linear: 18 x 4 = 72
    rows = hook_layer_table(model, (1, 5, 5))
    assert sum(r.macs for r in rows) == 162 + 72
    assert count_macs(model, (1, 5, 5)) == 162 + 72  # cnnkit.analyze (when present) agrees
    assert [r.kind for r in rows] == ["Conv2d", "ReLU", "Flatten", "Linear"]
    assert [r.params for r in rows] == [2 * 9 + 2, 0, 0, 18 * 4 + 4]
    assert rows[0].out_shape == (2, 3, 3)
    assert not any(m._forward_hooks for m in model.modules())  # the hooks are removed afterwards
    assert model.training  # and the train/eval mode restored
    grouped = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2))  # each output sees 4/2 input channels
    assert sum(r.macs for r in hook_layer_table(grouped, (4, 6, 6))) == 6 * 6 * 8 * 2 * 9
    assert count_macs(grouped, (4, 6, 6)) == 6 * 6 * 8 * 2 * 9
