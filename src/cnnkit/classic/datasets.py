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

from ..data.images import is_image_name
from ..errors import DataError, suggest

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
    """Sorted ``(train, val, test)`` indices: :func:`cnnkit.data.registry.stratified_split`, the split every
    CNN run uses, so a baseline is scored on exactly the images a CNN with the same seed is tested on."""
    from ..data.registry import stratified_split

    if not (0 <= val_split < 1 and 0 < test_split < 1 and val_split + test_split < 1):
        raise DataError(
            f"bad split fractions val={val_split}, test={test_split}",
            hint="use 0 <= val < 1, 0 < test < 1 and val + test < 1 (default 0.15 / 0.15)",
        )
    return stratified_split(np.asarray(labels), (val_split, test_split), seed, "the dataset")


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

    Decoded by :func:`cnnkit.data.images.read_image`, the reader of every command (EXIF orientation,
    16-bit images, decompression bombs refused), so a file the CNN commands read reads the same here;
    every way a file can be unusable is a :class:`DataError` naming the file.
    """
    from ..data.images import read_image as read_uint8

    x = read_uint8(path, 3 if color else 1, size).permute(1, 2, 0).numpy()
    return (x if color else x[:, :, 0]).astype(np.float64) / 255.0


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
        c: sorted(f for f in (path / c).rglob("*") if is_image_name(f) and f.is_file())
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
