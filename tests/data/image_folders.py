"""Real-image folders for the data tests: digits and photographs written as PNG files in class folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # colour photographs that ship with scikit-image


def digit_arrays(per_class: int = 50, scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (``per_class`` of each, first come) as uint8 ``N x H x W``, and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == k)[:per_class] for k in range(10)])
    imgs = np.round(d.images[idx] * (255 / 16)).astype(np.uint8)
    if scale > 1:
        imgs = imgs.repeat(scale, 1).repeat(scale, 2)
    return imgs, d.target[idx]


def write_digit_folder(root: Path, per_class: int = 50, scale: int = 1) -> Path:
    """``root/<digit>/<i>.png``: the digits as grey PNG files (not the registered dataset)."""
    imgs, labels = digit_arrays(per_class, scale)
    for i, (im, y) in enumerate(zip(imgs, labels, strict=True)):
        (root / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im, mode="L").save(root / str(y) / f"{i:04d}.png")
    return root


def photo_crops(per_class: int = 60, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ``size`` x ``size`` crops of half-size scikit-image photographs, one class per photograph."""
    import skimage.data

    rng = np.random.default_rng(seed)
    out, labels = [], []
    for k, name in enumerate(PHOTOS):
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        im = np.asarray(im.resize((im.width // 2, im.height // 2), Image.BILINEAR))
        h, w = im.shape[:2]
        for _ in range(per_class):
            y, x = rng.integers(0, h - size), rng.integers(0, w - size)
            out.append(im[y : y + size, x : x + size])
            labels.append(k)
    return np.stack(out), np.array(labels)


def write_photo_folder(root: Path, per_class: int = 60, size: int = 32) -> Path:
    """``root/<photo name>/<i>.png``: random crops of natural colour photographs."""
    imgs, labels = photo_crops(per_class, size)
    for i, (im, y) in enumerate(zip(imgs, labels, strict=True)):
        (root / PHOTOS[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(root / PHOTOS[y] / f"{i:04d}.png")
    return root
