"""Predict classes of image files with a saved run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.images import read_image  # one decoder for training and prediction: same pixels
from ..errors import DataError
from ..run import LoadedRun

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


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
    """Top-k classes for each image; unreadable files get an ``error`` instead of stopping the batch.

    ``tta`` (``"flip"`` or ``"crops"``) averages the probabilities over test-time views, as
    ``cnnkit eval --tta`` does.
    """
    from .tta import predict_probs

    files = collect_images(paths)
    if not files:
        # Fix (issue 18): an empty list used to give "no images found in " with nothing after it.
        raise DataError("no images found in " + ", ".join(map(str, paths)) if paths else "no image paths given",
                        hint="pass image files or folders of images")  # fmt: skip
    c, h, w = run.meta.input_size
    k = max(1, min(topk, len(run.classes)))
    preds: list[Prediction | None] = [None] * len(files)
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        imgs, where = [], []
        for i, f in enumerate(chunk):
            try:
                imgs.append(read_image(f, c, (h, w)))
                where.append(start + i)
            except DataError as e:
                preds[start + i] = Prediction(str(f), [], e.message)
        if imgs:
            probs = predict_probs(run, torch.stack(imgs), tta=tta)
            pv, pi = probs.topk(k, 1)
            for j, idx in enumerate(where):
                preds[idx] = Prediction(
                    str(files[idx]), [(run.classes[int(c_)], float(p)) for p, c_ in zip(pv[j], pi[j], strict=True)]
                )
    return [p for p in preds if p is not None]
