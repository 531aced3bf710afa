"""``--augment auto``: the augmentation chosen by looking at the training images.

One function, :func:`choose_augment`, decides for ``cnnkit train``, ``show-batch``, ``finetune`` and
``inspect``, from the images themselves (never from whether the dataset is registered):

* **Flips**: a small probe (logistic regression on 16 x 16 thumbnails, with a block of weights per
  class) is trained to tell training images from their mirror images, cross-validated with each
  image and its mirror in the same fold. Where it can (digits, letters, text: *chiral* data), a
  mirrored image shows something else, so there are no flips; where it is at chance (photos of
  things), flips are free extra data.
* **Shifts, rotations, zoom, elastic distortion**: chiral data are symbols, which keep their
  meaning under small rotations, zooms and (for grey strokes) elastic distortions, and need small
  shifts (1/16 of the side, 2 px at 28-32 px); photos get the usual random crops (1/8 of the side, as
  CIFAR's 4 px) and no rotation (it would pad the corners with black).
* **Colour jitter** only for colour images (grey images stored as RGB count as grey).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .augment import Augment
from .base import DatasetSplits, FileData, ImageData

PROBE_IMAGES = 400  # training images the mirror probe looks at (a second or so on a CPU)
PROBE_SIDE = 16  # thumbnail side for the probe
MIN_PROBE_IMAGES = 30  # below this the probe cannot tell, and the safe choice (no flips) is taken
CHIRAL_ACCURACY = 0.6  # probe accuracy (chance: 0.5) from which mirroring is taken to change meaning
MAX_CLASS_BLOCKS = 16  # more classes than this: one shared block of probe weights (keeps it fast)
COLOUR_SPREAD = 3.0  # mean |R-G| + |G-B| (0-255) below which RGB images are grey in disguise


class AugmentChoice(NamedTuple):
    """What ``auto`` chose: the spec, why (one sentence, printed and recorded), and the measurements."""

    spec: str
    reason: str
    evidence: dict[str, Any]


def sample_images(split: ImageData | FileData, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` seeded random images (uint8 ``N x C x H x W``) and their labels; streamed splits decode them."""
    idx = np.sort(np.random.RandomState(seed).permutation(len(split))[:n])
    part = split.subset(idx.tolist()) if len(idx) < len(split) else split
    if isinstance(part, FileData):
        imgs, failed = part.decode()  # the split's own reader (files, or tar shards)
        keep = np.ones(len(imgs), dtype=bool)
        keep[[i for i, _ in failed]] = False
        return torch.from_numpy(imgs[keep]), part.labels[torch.from_numpy(keep)]
    return part.images, part.labels


def thumbnails(images: torch.Tensor, side: int = PROBE_SIDE) -> torch.Tensor:
    """Grey ``side x side`` thumbnails, each shifted to mean 0 and scaled to norm 1 (brightness-free), flattened."""
    x = images.float().mean(1, keepdim=True)
    mode = "area" if min(x.shape[-2:]) >= side else "bilinear"
    x = F.interpolate(x, size=(side, side), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    x = x.flatten(1)
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)


def mirror_probe(images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Cross-validated accuracy of telling images from their mirror images (0.5: they look alike).

    Features: the thumbnail, plus a copy of it per class (so the probe can learn that a mirrored
    "3" is not a "3" without one weight vector serving every class). Each image and its mirror are in
    the same fold (``GroupKFold``), so the probe never sees the answer to a test image.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    x = thumbnails(torch.cat([images, images.flip(-1)])).numpy()
    n = len(images)
    y = np.r_[np.zeros(n), np.ones(n)]
    groups = np.r_[np.arange(n), np.arange(n)]
    lab = torch.cat([labels, labels]).numpy()
    classes = np.unique(lab)
    if 1 < len(classes) <= MAX_CLASS_BLOCKS:
        blocks = np.zeros((len(x), len(classes) * x.shape[1]), dtype=np.float32)
        for k, c in enumerate(classes):
            blocks[lab == c, k * x.shape[1] : (k + 1) * x.shape[1]] = x[lab == c]
        x = np.concatenate([x, blocks], axis=1)
    # Strong regularisation (C=0.1): a free probe finds spurious left/right cues in a few photos.
    probe = LogisticRegression(C=0.1, max_iter=300)
    # A small problem: threaded BLAS next to torch's thread pool only spin-waits (10-60x slower on 2 busy cores).
    with threadpool_limits(1):
        scores = cross_val_score(probe, x, y, groups=groups, cv=GroupKFold(n_splits=5))
    return float(scores.mean())


PROBE_VERSION = 1  # bump when mirror_probe's answer changes for the same images
_remembered: dict[str, float] = {}


def remembered_mirror_probe(images: torch.Tensor, labels: torch.Tensor, seed: int = 0, disk: bool = True) -> float:
    """:func:`mirror_probe`, computed once per set of probe images: remembered in this process and (``disk``)
    in the decoded-data cache folder (``$CNNKIT_CACHE``), so the next run on the same data starts a second
    or two sooner (the probe is a cross-validated logistic regression)."""
    import hashlib
    import json

    from ..io import atomic_write_json
    from .cache import cache_dir

    h = hashlib.sha256(f"mirror-probe/{PROBE_VERSION}/{PROBE_SIDE}/{MAX_CLASS_BLOCKS}/{seed}".encode())
    h.update(images.cpu().contiguous().numpy().tobytes())
    h.update(labels.cpu().to(torch.int64).contiguous().numpy().tobytes())
    key = h.hexdigest()[:40]
    if key in _remembered:
        return _remembered[key]
    path = cache_dir() / f"mirror-probe-{key}.json"
    try:
        if not disk:
            raise OSError("not asked to use the cache folder")
        acc = float(json.loads(path.read_text())["accuracy"])
        if not 0.0 <= acc <= 1.0:
            raise ValueError(acc)
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: compute it again
        acc = mirror_probe(images, labels, seed)
        try:
            if not disk:
                raise OSError("not asked to use the cache folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"accuracy": acc, "images": len(images), "seed": seed})
        except OSError:  # a read-only cache folder only costs the next run the probe again
            pass
    _remembered[key] = acc
    return acc


def colour_spread(images: torch.Tensor) -> float:
    """Mean ``|R-G| + |G-B|`` over pixels (0 for grey images, even when stored as RGB)."""
    if images.shape[1] < 3:
        return 0.0
    x = images[:, :3].float()
    return float(((x[:, 0] - x[:, 1]).abs() + (x[:, 1] - x[:, 2]).abs()).mean())


def choose_augment(
    data: DatasetSplits | ImageData | FileData, *, size: int | tuple[int, int] | None = None, seed: int = 0,
    cache: bool = True,
) -> AugmentChoice:  # fmt: skip
    """The augmentation ``--augment auto`` stands for, chosen from the training images, and why.

    ``data``: the dataset (its train split is used) or a split; ``size``: the side the model sees
    (default: the images' own), which sets the pixel magnitudes; ``cache``: the mirror probe's answer
    may be kept in the cache folder for the next run (``--no-cache``: only in this process).
    """
    split = data.train if isinstance(data, DatasetSplits) else data
    _, h, w = split.image_shape
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
    side = min(h, w)
    images, labels = sample_images(split, PROBE_IMAGES, seed)
    n = len(images)
    colour = colour_spread(images) > COLOUR_SPREAD
    ev: dict[str, Any] = {"probe_images": n, "side": side, "colour": colour}
    if n < MIN_PROBE_IMAGES:
        chiral, why_flip = (
            True,
            f"no flips: {n} training images are too few to tell whether mirroring changes them",
        )
    else:
        acc = remembered_mirror_probe(images, labels, seed, disk=cache)
        ev["mirror_probe_accuracy"] = round(acc, 3)
        # Significant too: 3 standard errors of a coin flip over the 2n probe answers.
        chiral = acc >= max(CHIRAL_ACCURACY, 0.5 + 3 * 0.5 / math.sqrt(2 * n))
        if chiral:
            why_flip = (f"no flips: a probe tells the images from their mirror images ({acc:.0%} cross-validated on "
                        f"{n} training images, chance 50%), so mirroring changes what they show")  # fmt: skip
        else:
            why_flip = (f"flips: a probe cannot tell the images from their mirror images ({acc:.0%} cross-validated "
                        f"on {n} training images, chance 50%)")  # fmt: skip
    ev["chiral"] = chiral
    aug = Augment()
    if chiral:  # symbols: small shifts, rotations and zooms keep their meaning; strokes bend
        aug.translate = max(1, round(side / 16))
        aug.rotate, aug.scale = 10.0, 0.1
        if not colour:
            aug.elastic = max(1, round(side / 32))
        why_geo = (f"shifts up to {aug.translate:g} px (1/16 of {side} px), rotations up to 10 degrees, zoom 10%"
                   + (f", elastic {aug.elastic:g} px (grey strokes)" if aug.elastic else ""))  # fmt: skip
    else:  # photos: random crops of 1/8 of the side (CIFAR's 4 px), no rotation (black corners)
        aug.translate = max(1, round(side / 8))
        aug.flip = True
        why_geo = f"shifts up to {aug.translate:g} px (1/8 of {side} px), no rotation"
    if colour:
        aug.jitter = 0.1
    why_colour = "colour jitter 0.1 (colour images)" if colour else "no colour jitter (grey images)"
    spec = aug.to_spec()
    return AugmentChoice(spec, f"{why_flip}; {why_geo}; {why_colour}", ev)


def auto_reason(spec: str, reason: str) -> str:
    """The record of an ``auto`` choice in config.yaml: ``auto chose SPEC: REASON``."""
    return f"auto chose {spec}: {reason}"


def reason_matches(spec: str, recorded: str | None) -> bool:
    """Whether a recorded ``augment_reason`` was written for ``spec`` (a replayed config), not for another."""
    return bool(recorded) and recorded.startswith(f"auto chose {spec}:")
