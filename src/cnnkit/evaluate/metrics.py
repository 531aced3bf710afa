"""Classification metrics, written out from their definitions (numpy, float64).

Each class is one detection problem ("is this class present?"), so every metric starts from the
confusion matrix ``C`` (rows = true class, columns = predicted class) and the one-vs-rest counts
of class ``k`` among ``n`` images::

    TP_k = C[k, k]            FP_k = sum_i C[i, k] - TP_k      (predicted k, was not k)
    FN_k = sum_j C[k, j] - TP_k                                (was k, predicted something else)
    TN_k = n - TP_k - FP_k - FN_k

    precision_k   = TP / (TP + FP)   = P(present | detected)
    recall_k      = TP / (TP + FN)   = P(detected | present)        (also: sensitivity, TPR)
    specificity_k = TN / (TN + FP)   = P(not detected | not present)
    F1_k          = 2 P R / (P + R)  (harmonic mean of precision and recall)
    accuracy      = trace(C) / n     (top-1; top-k: the true class is among the k best scores)

A ratio whose denominator is zero is reported as 0 (scikit-learn's ``zero_division=0``).
Macro averages weigh every class equally; weighted averages weigh each class by its support
(number of true images), so they follow the class balance of the test set.

Ranking metrics use the scores (probabilities), not only the arg-max: the precision-recall curve
of class ``k`` sweeps a threshold over ``p_k``; average precision (AP) is the area under its step
curve, ``AP = sum_t (R_t - R_{t-1}) P_t``; mAP is the mean AP over classes. ROC-AUC is the area
under TPR against FPR (one-vs-rest, macro). Log loss is ``-mean log p(true class)``. Expected
calibration error (ECE, Guo et al. 2017) bins images by confidence (the top probability) and
averages ``|accuracy - mean confidence|`` over bins, weighted by how many images fall in each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = float(np.finfo(np.float64).eps)  # log-loss clipping, the same as scikit-learn's for float64


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (shifted by the row max so ``exp`` cannot overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = number of images of true class ``i`` predicted as ``j`` (int64, K x K)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    # One bincount over the flattened (true, pred) pair index: no Python loop over images.
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@dataclass
class PerClass:
    """One-vs-rest counts and rates per class (arrays of length K)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    specificity: np.ndarray
    f1: np.ndarray
    support: np.ndarray


def per_class_metrics(cm: np.ndarray) -> PerClass:
    """Precision, recall, specificity, F1 and support of every class from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    n = cm.sum()
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = n - tp - fp - fn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    # 2PR/(P+R) rewritten as 2TP/(2TP+FP+FN): the same number, defined whenever TP+FP+FN > 0.
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return PerClass(tp, fp, fn, tn, precision, recall, _ratio(tn, tn + fp), f1, tp + fn)


def averages(pc: PerClass) -> dict[str, dict[str, float]]:
    """Macro (every class counts the same) and support-weighted averages of the per-class rates."""
    w = pc.support / max(int(pc.support.sum()), 1)
    out: dict[str, dict[str, float]] = {"macro": {}, "weighted": {}}
    for name in ("precision", "recall", "specificity", "f1"):
        v = getattr(pc, name)
        out["macro"][name] = float(v.mean()) if len(v) else float("nan")
        out["weighted"][name] = float((v * w).sum())
    return out


def topk_accuracy(scores: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Fraction of images whose true class is among the ``k`` highest scores.

    Tied scores are ranked as scikit-learn ranks them (a stable sort, reversed: among equal scores
    the higher class index comes first), so a tie cannot make the two disagree.
    """
    scores = np.asarray(scores)
    if len(scores) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(scores, axis=1, kind="stable")[:, ::-1][:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(axis=1).mean())


def binary_counts(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives when thresholding ``score`` at each of its distinct values.

    Images are sorted by decreasing score; tied scores are one threshold (they are all accepted
    or all rejected together), which is what makes the curves independent of tie order.
    Returns ``(tps, fps, thresholds)``, thresholds decreasing.
    """
    y_bin = np.asarray(y_bin, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y_bin[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(t)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps, s[last_of_tie]


def pr_curve(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every threshold (highest threshold first), and the thresholds."""
    tps, fps, thr = binary_counts(y_bin, score)
    precision = _ratio(tps, tps + fps)
    recall = tps / tps[-1] if len(tps) and tps[-1] > 0 else np.full_like(tps, np.nan)
    return precision, recall, thr


def average_precision(y_bin: np.ndarray, score: np.ndarray) -> float:
    """Area under the step precision-recall curve: ``sum_t (R_t - R_{t-1}) P_t`` (NaN without positives)."""
    precision, recall, _ = pr_curve(y_bin, score)
    if not len(recall) or np.isnan(recall[-1]):
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y_bin: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (TPR against FPR, trapezoids); NaN when one side has no images."""
    tps, fps, _ = binary_counts(y_bin, score)
    if not len(tps) or tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    # Trapezoids: a tie between a positive and a negative counts half, as in the Mann-Whitney U.
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def one_vs_rest(probs: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP and ROC-AUC of every class, treating class ``k`` against all others with score ``p_k``."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true)
    k = probs.shape[1]
    ap = np.array([average_precision(y_true == c, probs[:, c]) for c in range(k)])
    auc = np.array([roc_auc(y_true == c, probs[:, c]) for c in range(k)])
    return ap, auc


def log_loss(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-probability of the true class, probabilities clipped to ``[eps, 1 - eps]``."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return float("nan")
    p = np.clip(probs[np.arange(len(probs)), np.asarray(y_true)], EPS, 1 - EPS)
    return float(-np.log(p).mean())


@dataclass
class Calibration:
    """Reliability of the confidence: per-bin mean confidence, accuracy and count, and the ECE."""

    edges: np.ndarray  # n_bins + 1 bin edges on [0, 1]
    confidence: np.ndarray  # mean top probability per bin (NaN for empty bins)
    accuracy: np.ndarray  # fraction correct per bin (NaN for empty bins)
    count: np.ndarray  # images per bin
    ece: float  # sum_b (n_b / n) |acc_b - conf_b|
    mce: float  # max_b |acc_b - conf_b| (worst bin)
    mce_count: int = 0  # images in that worst bin: an MCE from one or two images says little


def calibration(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> Calibration:
    """Bin images by confidence (bins ``(e_i, e_{i+1}]``, the first also holds 0) and compare with accuracy."""
    probs = np.asarray(probs, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=correct, minlength=n_bins) / count
    gap = np.abs(acc - mean_conf)
    used = count > 0
    n = max(len(conf), 1)
    ece = float(np.sum(count[used] / n * gap[used])) if used.any() else float("nan")
    mce = float(gap[used].max()) if used.any() else float("nan")
    worst = int(count[used][np.argmax(gap[used])]) if used.any() else 0
    return Calibration(edges, mean_conf, acc, count, ece, mce, worst)


def most_confused(cm: np.ndarray, classes: list[str], n: int = 10) -> list[dict[str, object]]:
    """The ``n`` largest off-diagonal cells: (true, predicted) pairs the model mixes up most."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    rows = cm.sum(axis=1)
    out = []
    for f in flat:
        i, j = divmod(int(f), cm.shape[1])
        if off[i, j] == 0:
            break
        out.append({"true": classes[i], "pred": classes[j], "count": int(off[i, j]),
                    "rate": float(off[i, j] / rows[i]) if rows[i] else 0.0})  # fmt: skip
    return out


def top_losses(probs: np.ndarray, y_true: np.ndarray, n: int = 16) -> np.ndarray:
    """Indices of the ``n`` images with the highest loss ``-log p(true)``, worst first.

    The most confidently wrong images come first: a wrong answer at 99% costs more than one at 40%.
    """
    probs = np.asarray(probs, dtype=np.float64)
    p_true = probs[np.arange(len(probs)), np.asarray(y_true)]
    return np.argsort(p_true, kind="stable")[:n]


def classification_metrics(probs: np.ndarray, y_true: np.ndarray, classes: list[str]) -> dict[str, object]:
    """Every metric of the report from probabilities ``N x K`` and true labels (plain JSON-able values)."""
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    k = len(classes)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, pred, k)
    pc = per_class_metrics(cm)
    ap, auc = one_vs_rest(probs, y_true)
    cal = calibration(probs, y_true)
    n = len(y_true)
    acc = float(np.trace(cm) / n) if n else float("nan")
    top5 = topk_accuracy(probs, y_true, 5)
    present = pc.support > 0  # AP and AUC are undefined for a class with no test image
    per_class = [
        {"class": classes[c], "precision": float(pc.precision[c]), "recall": float(pc.recall[c]),
         "specificity": float(pc.specificity[c]), "f1": float(pc.f1[c]), "support": int(pc.support[c]),
         "ap": float(ap[c]), "roc_auc": float(auc[c]), "tp": int(pc.tp[c]), "fp": int(pc.fp[c]),
         "fn": int(pc.fn[c]), "tn": int(pc.tn[c])}
        for c in range(k)
    ]  # fmt: skip
    return {
        "n": n,
        "acc": acc,
        "top5": top5,
        "error": 1 - acc,
        "top5_error": 1 - top5,
        "loss": log_loss(probs, y_true),
        **averages(pc),
        "map": float(np.nanmean(ap[present])) if present.any() else float("nan"),
        "roc_auc": float(np.nanmean(auc[present])) if present.any() else float("nan"),
        "ece": cal.ece,
        "mce": cal.mce,
        "mce_images": cal.mce_count,
        "most_confused": most_confused(cm, classes),
        "per_class": per_class,
    }
