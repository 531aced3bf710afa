"""``cnnkit inspect DATA``: what a careful user checks before trusting a score.

* class counts per split and the imbalance ratio;
* image sizes, modes and channels as stored (file headers for ``folder:``/``csv:`` data);
* exact duplicates (identical decoded pixels) and near duplicates (the same picture re-encoded,
  with noise or changed brightness/contrast) within a split and across train/val/test, where a test
  image that is also a training image makes the test score a memory test (leakage);
* images that are probably mislabelled, in the spirit of confident learning (Northcutt et al.
  2021): out-of-fold predicted probabilities of a quick model (logistic regression on thumbnails,
  scikit-learn's ``cross_val_predict``); an image whose own label gets a low probability, while
  another class clears that class's own confidence threshold, is a label issue; all images are
  ranked by the probability of their given label;
* the augmentation ``--augment auto`` would choose (:func:`~cnnkit.data.auto_augment.choose_augment`).

Near duplicates are found in two steps: candidates are the nearest neighbours by cosine similarity of
brightness-normalised 16 x 16 thumbnails, then a pair counts only when, with brightness and contrast
matched, almost no pixel differs much (two different handwritten 3s are close in cosine, but differ
clearly in some pixels; a re-encoded copy differs a little everywhere).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .auto_augment import choose_augment, thumbnails
from .base import DatasetSplits, FileData

SPLITS = ("train", "val", "test")
NEIGHBOURS = 5  # candidates per image for near duplicates
CANDIDATE_COSINE = 0.9  # thumbnail cosine similarity from which a pair is checked pixel by pixel
NEAR_PIXEL_DIFF = 0.5  # |difference| in standard deviations of the image that counts as a changed pixel
NEAR_CHANGED_FRACTION = 0.02  # at most this fraction of changed pixels: a near duplicate
COMPARE_SIDE = 32  # pixel comparison at most at this side (larger images are area-downsampled)
MISLABEL_MAX_IMAGES = 20000  # the label check looks at a seeded sample of this many images at most
CHUNK = 2048  # rows of the similarity matrix computed at once (memory: CHUNK x N floats)

Progress = Callable[[str], None]


def pooled(data: DatasetSplits) -> tuple[torch.Tensor, np.ndarray, np.ndarray, list[str]]:
    """All splits as one uint8 tensor, with labels, split names and ids (streamed splits are decoded)."""
    imgs, labels, splits, ids = [], [], [], []
    for s in SPLITS:
        part = data.split(s)
        if len(part) == 0:
            continue
        x = part.load().images if isinstance(part, FileData) else part.images
        imgs.append(x)
        labels.append(part.labels.numpy())
        splits += [s] * len(part)
        ids += list(part.ids)
    return torch.cat(imgs), np.concatenate(labels), np.array(splits), ids


def stored_formats(data: DatasetSplits, ids: list[str]) -> dict[str, Any]:
    """Sizes and modes as stored: file headers for files, the tensors' own shape for built-in data."""
    root = data.info.get("files")
    c, h, w = data.image_shape
    if root and os.path.exists(str(root)) and data.name.split(":", 1)[0] in ("folder", "csv"):
        from .images import probe_files

        res, failed = probe_files([os.path.join(str(root), i) for i in ids])
        sizes = Counter(f"{s[1]}x{s[0]}" for m in res if m for s in [m[1]])
        modes = Counter(m[0] for m in res if m)
        unread = len(failed)
    else:
        sizes, modes, unread = (
            Counter({f"{w}x{h}": len(ids)}),
            Counter({"L" if c == 1 else "RGB": len(ids)}),
            0,
        )
    return {"sizes": dict(sizes.most_common()), "modes": dict(modes.most_common()), "unreadable": unread,
            "loaded_as": f"{c}x{h}x{w}", "channels": c}  # fmt: skip


def class_table(data: DatasetSplits) -> dict[str, Any]:
    """Images per class and split, the total per class, and the largest/smallest class ratio."""
    k = data.num_classes
    per = {s: data.split(s).class_counts(k) for s in SPLITS}
    total = [sum(per[s][i] for s in SPLITS) for i in range(k)]
    ratio = max(total) / max(min(total), 1)
    return {"classes": list(data.classes), "counts": per, "total": total, "imbalance": round(ratio, 2)}


def _compare_view(images: torch.Tensor) -> torch.Tensor:
    """Grey images at most ``COMPARE_SIDE`` px, each standardised (mean 0, std 1): brightness and contrast free."""
    x = images.float().mean(1, keepdim=True)
    if max(x.shape[-2:]) > COMPARE_SIDE:
        x = F.interpolate(x, size=(COMPARE_SIDE, COMPARE_SIDE), mode="area")
    x = x.flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / x.std(1, keepdim=True).clamp_min(1e-3)


def _groups(pairs: list[tuple[int, int]], n: int) -> list[list[int]]:
    """Connected components (union-find) of ``pairs``: each group of 2 or more images, sorted."""
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        parent[find(a)] = find(b)
    out: dict[int, list[int]] = {}
    for i in {i for p in pairs for i in p}:
        out.setdefault(find(i), []).append(i)
    return sorted((sorted(g) for g in out.values()), key=lambda g: g[0])


def find_duplicates(
    images: torch.Tensor, progress: Progress | None = None
) -> tuple[list[list[int]], list[list[int]]]:
    """Groups of exact duplicates and groups of near duplicates (indices into ``images``).

    An image of an exact group can still be in a near group (a third, re-encoded copy).
    """
    n = len(images)
    by_hash: dict[bytes, list[int]] = {}
    flat = images.reshape(n, -1).numpy()
    for i in range(n):
        by_hash.setdefault(hashlib.sha1(flat[i].tobytes()).digest(), []).append(i)
    exact = sorted((g for g in by_hash.values() if len(g) > 1), key=lambda g: g[0])
    same = {i: g[0] for g in exact for i in g}  # every copy stands for its group's first image
    keep = np.array(sorted({same.get(i, i) for i in range(n)}))
    t = thumbnails(images[torch.from_numpy(keep)])
    view = _compare_view(images[torch.from_numpy(keep)])
    k = min(NEIGHBOURS + 1, len(keep))
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(keep), CHUNK):
        if progress is not None and len(keep) > CHUNK:
            progress(f"near duplicates: {start:,}/{len(keep):,} images compared")
        sim = t[start : start + CHUNK] @ t.T
        rows = torch.arange(start, min(start + CHUNK, len(keep)))
        sim[rows - start, rows] = -1.0  # not its own neighbour
        val, idx = sim.topk(k, dim=1)
        for r, (vs, js) in enumerate(zip(val.tolist(), idx.tolist(), strict=True)):
            a = start + r
            for v, b in zip(vs, js, strict=True):
                if v < CANDIDATE_COSINE:
                    break
                changed = ((view[a] - view[b]).abs() > NEAR_PIXEL_DIFF).float().mean().item()
                if changed <= NEAR_CHANGED_FRACTION:
                    pairs.append((min(a, b), max(a, b)))
    near = [[int(keep[i]) for i in g] for g in _groups(sorted(set(pairs)), len(keep))]
    return exact, near


def label_issues(
    images: torch.Tensor, labels: np.ndarray, num_classes: int, seed: int = 0, top: int = 30
) -> dict[str, Any]:
    """Probably mislabelled images: out-of-fold probabilities of a quick model, confident-learning style.

    Returns the ranking (lowest probability of the given label first, ``top`` of them), the number of
    images confident learning flags (another class above its own threshold, ahead of the label),
    the model's out-of-fold accuracy and how many images were checked.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    n = len(images)
    idx = np.arange(n)
    if n > MISLABEL_MAX_IMAGES:
        idx = np.sort(np.random.RandomState(seed).permutation(n)[:MISLABEL_MAX_IMAGES])
    y = labels[idx]
    counts = np.bincount(y, minlength=num_classes)
    folds = int(min(5, counts[counts > 0].min()))
    if folds < 2 or (counts > 0).sum() < 2:
        return {"checked": 0, "note": "too few images per class for a cross-validated check", "ranking": []}
    x = images[torch.from_numpy(idx)]
    feats = [thumbnails(x, min(16, *x.shape[-2:])).numpy()]  # 8x8 digits stay 8x8: 4x fewer weights
    if x.shape[1] == 3:  # colour carries class information that grey thumbnails lose
        feats.append(F.interpolate(x.float() / 255, size=(8, 8), mode="area").flatten(1).numpy())
    # Standardised features and a strong L2 penalty: lbfgs converges in a few dozen steps (seconds, not tens).
    feats_np = StandardScaler().fit_transform(np.concatenate(feats, axis=1))
    model = LogisticRegression(C=0.1, max_iter=300)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = np.zeros((len(idx), num_classes))
    present = np.flatnonzero(counts > 0)
    # One BLAS thread: for a problem this small, OpenBLAS threads next to torch's OpenMP pool spin-wait and
    # make the fit tens of times slower on a busy CPU (measured: 30 s -> 0.5 s for 500 images on 2 cores).
    with threadpool_limits(1):
        proba[:, present] = cross_val_predict(model, feats_np, y, cv=cv, method="predict_proba")
    given = proba[np.arange(len(y)), y]
    # Confident learning's per-class thresholds: the mean probability of class j over images labelled j.
    thresh = np.array([proba[y == j, j].mean() if (y == j).any() else 1.0 for j in range(num_classes)])
    above = np.where(proba >= thresh, proba, -1.0)
    above[np.arange(len(y)), y] = -1.0
    flagged = (above.max(1) > given) & (above.max(1) >= 0)
    order = np.argsort(given, kind="stable")[:top]
    ranking = [{"index": int(idx[i]), "given": int(y[i]), "suggested": int(proba[i].argmax()),
                "p_given": round(float(given[i]), 4), "p_suggested": round(float(proba[i].max()), 4),
                "flagged": bool(flagged[i])} for i in order]  # fmt: skip
    acc = float((proba.argmax(1) == y).mean())
    # A model that barely beats guessing the largest class cannot vouch for any label: say so.
    base = counts.max() / counts.sum()
    reliable = bool(acc >= base + 0.5 * (1 - base))
    out = {"checked": len(idx), "model": "logistic regression on thumbnails", "folds": folds,
           "oof_accuracy": round(acc, 4), "majority_rate": round(float(base), 4), "reliable": reliable,
           "flagged": int(flagged.sum()), "ranking": ranking}  # fmt: skip
    if not reliable:
        out["note"] = (f"the quick model is weak on this data ({acc:.0%} out-of-fold, {base:.0%} by always guessing "
                       "the largest class), so its suspects are weak evidence; look at them, but trust a trained "
                       "network's mistakes (cnnkit eval) more")  # fmt: skip
    return out


def inspect_dataset(
    data: DatasetSplits, *, input_size: int | None = None, seed: int = 0, top: int = 30,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The whole report as plain data (JSON-ready); ``input_size`` is the side training would use."""
    say = progress or (lambda s: None)
    if not data.in_memory:
        _check_fits(data)
    images, labels, splits, ids = pooled(data)
    say(f"{len(images):,} images loaded; reading file headers")
    report: dict[str, Any] = {"dataset": data.name, "split": data.info.get("split", "as stored"),
                              "splits": {s: len(data.split(s)) for s in SPLITS}}  # fmt: skip
    report["classes"] = class_table(data)
    report["images"] = stored_formats(data, ids)
    say("looking for duplicates")
    exact, near = find_duplicates(images, progress)

    def members(g: list[int]) -> list[dict[str, Any]]:
        return [
            {"index": i, "id": ids[i], "split": str(splits[i]), "label": data.classes[labels[i]]} for i in g
        ]

    def describe(groups: list[list[int]], kind: str) -> list[dict[str, Any]]:
        return [{"kind": kind, "cross_split": len({splits[i] for i in g}) > 1,
                 "label_conflict": len({labels[i] for i in g}) > 1, "images": members(g)} for g in groups]  # fmt: skip

    dups = describe(exact, "exact") + describe(near, "near")
    report["duplicates"] = {
        "exact_groups": len(exact), "near_groups": len(near),
        "cross_split_groups": sum(d["cross_split"] for d in dups),
        "label_conflicts": sum(d["label_conflict"] for d in dups),
        "leaked_eval_images": sum(1 for d in dups if d["cross_split"] for m in d["images"] if m["split"] != "train"),
        "groups": sorted(dups, key=lambda d: (not d["cross_split"], not d["label_conflict"], d["images"][0]["index"])),
    }  # fmt: skip
    say("checking labels with a cross-validated model")
    issues = label_issues(images, labels, data.num_classes, seed, top)
    for r in issues["ranking"]:
        i = r.pop("index")
        r.update(index=i, id=ids[i], split=str(splits[i]), given=data.classes[r["given"]],
                 suggested=data.classes[r["suggested"]])  # fmt: skip
    report["label_issues"] = issues
    say("choosing the augmentation")
    choice = choose_augment(data, size=input_size, seed=seed)
    report["auto"] = {"input_size": input_size, "augment": choice.spec, "augment_reason": choice.reason,
                      "evidence": choice.evidence}  # fmt: skip
    report["_images"] = images  # for the HTML page's thumbnails (dropped from JSON)
    return report


def _check_fits(data: DatasetSplits) -> None:
    """Every image is compared with every other, so inspect holds them all: a streamed dataset must fit the budget.

    Folder/CSV data streams only beyond the budget (refused here); a pack (``shards:DIR``) always streams,
    and is decoded into memory when it fits the ``--memory-budget-mb`` its loader recorded.
    """
    from ..errors import DataError

    n = sum(len(data.split(s)) for s in SPLITS)
    c, h, w = data.image_shape
    need_mb = n * c * h * w / 2**20
    budget = data.info.get("memory_budget_mb")
    if budget is not None and need_mb <= budget:
        return
    over = f"more than --memory-budget-mb {budget:,.0f}" if budget is not None else "larger than the memory budget"
    sample = ("lower per_class in the subset spec" if data.name.startswith("subset:")
              else f"inspect a sample: 'subset:{data.name}?per_class=500'")  # fmt: skip
    raise DataError(f"{data.name!r} decodes to {need_mb:,.{2 if need_mb < 10 else 0}f} MB ({n:,} images of "
                    f"{c}x{h}x{w}), {over}; inspect compares every image with every other, so it holds them all "
                    "in memory", hint=f"raise --memory-budget-mb if the machine has the memory, or {sample}")  # fmt: skip


def json_ready(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the image tensor (``--json``)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}
