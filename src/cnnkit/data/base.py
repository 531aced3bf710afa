"""Plain containers passed between the data layer and the rest of cnnkit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ImageData:
    """One split held in memory: uint8 images ``N x C x H x W``, int64 labels, and an id per image.

    Ids name where each image came from (a file path, or ``digits/123``) so a split can be saved
    and checked later.
    """

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("images must be a uint8 tensor N x C x H x W")
        if len(self.images) != len(self.labels) or len(self.ids) != len(self.labels):
            raise ValueError("images, labels and ids must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | list[int]) -> ImageData:
        idx = torch.as_tensor(index, dtype=torch.long)
        return ImageData(self.images[idx], self.labels[idx], [self.ids[i] for i in idx.tolist()])

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class DatasetSplits:
    """A dataset ready for training: train/val/test splits plus what a model needs to know."""

    name: str
    classes: list[str]
    train: ImageData
    val: ImageData
    test: ImageData
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)  # source, split method, skipped files, ...

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    def split(self, name: str) -> ImageData:
        if name not in ("train", "val", "test"):
            from ..errors import DataError

            raise DataError(f"unknown split {name!r}", hint="use train, val or test")
        return getattr(self, name)

    def split_ids(self) -> dict[str, list[str]]:
        return {s: list(self.split(s).ids) for s in ("train", "val", "test")}
