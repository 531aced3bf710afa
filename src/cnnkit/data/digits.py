"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship with the package."""

from __future__ import annotations

import numpy as np
import torch

from .base import ImageData
from .registry import RawDataset, register_dataset


@register_dataset(
    "digits",
    "scikit-learn handwritten digits (UCI, 8x8, 17 grey levels), ships with scikit-learn",
    num_classes=10,
    image_shape=(1, 8, 8),
    split_sizes={"all": 1797},
    default_augment="translate=2,rotate=10,scale=0.1,elastic=1",
    hflip_ok=False,
)
def load_digits_dataset(root: str | None = None, download: bool = False) -> RawDataset:
    """All 1,797 digits as one pool (cnnkit carves the stratified train/val/test split)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    # Pixel values are counts 0..16 of "on" pixels in 4x4 blocks; scale to the usual 0..255 range.
    imgs = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawDataset(
        classes=[str(i) for i in range(10)],
        splits={"all": ImageData(torch.from_numpy(imgs), torch.from_numpy(d.target.astype(np.int64)),
                                 [f"digits/{i}" for i in range(len(imgs))])},  # fmt: skip
        info={"source": "sklearn.datasets.load_digits", "files": "inside the scikit-learn package"},
    )
