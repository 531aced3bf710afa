"""The small image loader the classical baselines need: ``digits`` and ``folder:PATH``.

Kept separate from :mod:`cnnkit.data` on purpose (the classical pipeline wants plain float NumPy
images, not uint8 tensors), but the split is the same recipe as ``cnnkit.data``: stratified and
seeded, validation carved first (``random_state=seed``), then test (``random_state=seed + 1``),
sizes ``round(fraction * N)`` -- so a baseline is scored on the same test images as a CNN trained
with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, suggest

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
DATASETS = ("digits", "folder:PATH")
# A folder dataset is held as float64 in memory: refuse one that would need more than this.
MEMORY_LIMIT_MB = 4096


@dataclass
class ClassicSplit:
    """Float images in [0, 1], ``(N, H, W)`` grey or ``(N, H, W, 3)`` colour, with integer labels."""

    name: str
    classes: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def x_trainval(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_val])

    @property
    def y_trainval(self) -> np.ndarray:
        return np.concatenate([self.y_train, self.y_val])


def stratified_indices(
    labels: np.ndarray, val_split: float, test_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted ``(train, val, test)`` indices: stratified, seeded, val carved first then test."""
    from sklearn.model_selection import train_test_split

    if not (0 <= val_split < 1 and 0 < test_split < 1 and val_split + test_split < 1):
        raise DataError(
            f"bad split fractions val={val_split}, test={test_split}",
            hint="use 0 <= val < 1, 0 < test < 1 and val + test < 1 (default 0.15 / 0.15)",
        )
    labels = np.asarray(labels)
    n = len(labels)
    rest = np.arange(n)
    parts = []
    for k, frac in enumerate((val_split, test_split)):
        if frac == 0:
            parts.append(np.array([], dtype=np.int64))
            continue
        size = max(1, round(frac * n))
        if size >= len(rest):  # sklearn would raise "the resulting train set will be empty"
            raise DataError(
                f"{n} images are too few for a {frac:g} {('validation', 'test')[k]} split and a training set",
                hint="add images (a few per class at least) or use smaller split fractions",
            )
        strat = labels[rest]
        classes, counts = np.unique(strat, return_counts=True)
        # sklearn can stratify only with >= 2 images per class and one test slot per class.
        if counts.min() < 2 or size < len(classes):
            strat = None
        rest, part = train_test_split(rest, test_size=size, random_state=seed + k, stratify=strat)
        parts.append(np.sort(part))
    return np.sort(rest), parts[0], parts[1]


def load_classic_dataset(
    spec: str,
    seed: int = 0,
    val_split: float = 0.15,
    test_split: float = 0.15,
    image_size: int | tuple[int, int] = 64,
    color: bool | None = None,
) -> ClassicSplit:
    """Load ``"digits"`` or ``"folder:PATH"`` as a stratified 70/15/15 split (by default).

    ``digits``: scikit-learn's 1,797 8x8 digits, scaled from 0..16 to [0, 1]. ``folder:PATH``:
    one sub-folder per class, read with PIL and resized to ``image_size`` (so every image gives
    features of the same length); ``color=None`` keeps RGB if any image is in colour.
    """
    if spec == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels = d.images / 16.0, d.target.astype(np.int64)
        classes = [str(c) for c in range(10)]
        info: dict[str, Any] = {"source": "sklearn.datasets.load_digits"}
    elif spec.startswith("folder:"):
        images, labels, classes, info = _load_folder(spec.split(":", 1)[1], image_size, color)
    else:
        raise DataError(f"unknown dataset {spec!r}", hint=suggest(spec, DATASETS))
    tr, va, te = stratified_indices(labels, val_split, test_split, seed)
    info["split"] = (
        f"stratified {1 - val_split - test_split:.0%}/{val_split:.0%}/{test_split:.0%}, seed {seed}"
    )
    return ClassicSplit(
        spec, classes, images[tr], labels[tr], images[va], labels[va], images[te], labels[te], info
    )


def read_image(path: str | Path, color: bool = False, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image as float in [0, 1]: ``(H, W)`` grey (ITU-R 601 luma) or ``(H, W, 3)`` RGB.

    Every way a file can be unusable (missing, a folder, empty, not an image, truncated, or a
    decompression bomb: a header declaring more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``) is a
    :class:`DataError` naming the file.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise DataError(f"image not found: {path}")
    if p.is_dir():
        raise DataError(f"{path} is a folder, not an image file", hint="pass one image file")
    if p.stat().st_size == 0:
        raise DataError(f"cannot read image {path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit, then decodes the whole thing anyway.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = im.convert("RGB" if color else "L")
                if size is not None:
                    im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(im, dtype=np.float64) / 255.0
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"cannot read image {path}: its header declares more than {Image.MAX_IMAGE_PIXELS:,} pixels",
            hint="a decompression bomb or a huge scan: shrink it first",
        ) from None
    except UnidentifiedImageError:
        raise DataError(
            f"cannot read image {path}: not an image (PIL cannot identify the format)",
            hint="use a PNG, JPEG, BMP, GIF or TIFF file",
        ) from None
    except Exception as e:  # PIL's plugins raise OSError, ValueError, SyntaxError... for damaged files
        raise DataError(
            f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            hint="the file is damaged or truncated; use a PNG, JPEG, BMP, GIF or TIFF file",
        ) from None


def _load_folder(
    root: str, image_size: int | tuple[int, int], color: bool | None
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"dataset folder {root!r} is a file", hint="use folder:PATH with one sub-folder per class")
    if not path.is_dir():
        raise DataError(
            f"dataset folder not found: {root!r}", hint="use folder:PATH with one sub-folder per class"
        )
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {  # is_file: a sub-folder called "x.png" is not an image
        c: sorted(f for f in (path / c).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        for c in classes
    }
    classes = [c for c in classes if files[c]]
    if len(classes) < 2:
        raise DataError(
            f"folder {root!r} has {len(classes)} class sub-folder(s) with images; need at least 2",
            hint="lay it out as PATH/<class name>/<image files>",
        )
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in size):
        raise DataError(f"image size must be a positive integer or a pair, got {image_size!r}")
    n_files = sum(len(v) for v in files.values())
    need_mb = n_files * size[0] * size[1] * 3 * 8 / 2**20  # float64, RGB at worst
    if need_mb > MEMORY_LIMIT_MB:
        raise DataError(
            f"{n_files} images at {size[0]}x{size[1]} pixels need about {need_mb:,.0f} MB as floats "
            f"(limit {MEMORY_LIMIT_MB:,} MB)",
            hint="use a smaller --image-size",
        )
    if color is None:
        from PIL import Image

        def is_color(f: Path) -> bool:
            try:
                with Image.open(f) as im:
                    return im.mode not in ("L", "LA", "1", "I", "I;16", "F")
            except Exception:  # unreadable: read_image below names the file with the reason
                return False

        color = any(is_color(f) for c in classes for f in files[c][:20])
    images, labels = [], []
    for k, c in enumerate(classes):
        for f in files[c]:
            images.append(read_image(f, color=color, size=size))  # type: ignore[arg-type]
            labels.append(k)
    info = {"source": str(path), "color": color, "image_size": size}
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes, info
