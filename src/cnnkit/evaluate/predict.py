"""Predict classes of image files with a saved run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.images import IMAGE_EXTENSIONS, to_image_tensor  # one decoder for training and prediction
from ..errors import DataError
from ..run import LoadedRun


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Files given directly, plus image files found recursively in given folders (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))  # fmt: skip
        else:
            out.append(p)
    return out


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), best first
    error: str | None = None


def predict_files(
    run: LoadedRun, paths: list[str | Path], topk: int = 5, batch_size: int = 128, tta: str | None = None
) -> list[Prediction]:
    """Top-k classes for each image file; unreadable files get an ``error`` instead of stopping the batch.

    Folders are searched recursively. ``tta`` (``"flip"``, ``"flip+shift"`` or ``"crops"``) averages the probabilities
    over test-time views, as ``cnnkit eval --tta`` does.
    """
    files = collect_images(paths)
    if not files:
        # Fix (issue 18): an empty list used to give "no images found in " with nothing after it.
        raise DataError("no images found in " + ", ".join(map(str, paths)) if paths else "no image paths given",
                        hint="pass image files or folders of images")  # fmt: skip
    return predict_images(run, files, topk=topk, batch_size=batch_size, tta=tta)


def predict_images(
    run: LoadedRun, images: Sequence[Any], topk: int = 5, batch_size: int = 128, tta: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Prediction]:
    """Top-k classes for images held in any form: paths, PIL images, NumPy arrays, tensors.

    Every image goes through :func:`~cnnkit.data.images.to_image_tensor`, the conversion training
    uses, so a picture gives the same answer from a file, from memory or over HTTP. An image that
    cannot be used gets an ``error`` instead of stopping the batch. ``names`` label the results
    (default: the path, or ``<image i>``).
    """
    from .tta import predict_probs

    c, h, w = run.meta.input_size
    k = max(1, min(topk, len(run.classes)))
    labels = list(names) if names is not None else [
        str(im) if isinstance(im, (str, os.PathLike)) else f"<image {i}>" for i, im in enumerate(images)
    ]  # fmt: skip
    preds: list[Prediction | None] = [None] * len(images)
    for start in range(0, len(images), batch_size):
        imgs, where = [], []
        for i in range(start, min(start + batch_size, len(images))):
            try:
                imgs.append(to_image_tensor(images[i], c, (h, w)))
                where.append(i)
            except DataError as e:
                preds[i] = Prediction(labels[i], [], e.message)
        if imgs:
            probs = predict_probs(run, torch.stack(imgs), tta=tta)
            pv, pi = probs.topk(k, 1)
            for j, idx in enumerate(where):
                preds[idx] = Prediction(
                    labels[idx], [(run.classes[int(c_)], float(p)) for p, c_ in zip(pv[j], pi[j], strict=True)]
                )
    return [p for p in preds if p is not None]
