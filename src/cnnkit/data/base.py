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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    in_memory = True


@dataclass
class FileData:
    """One split left on disk (the streaming path): image files decoded batch by batch.

    Same ``labels``, ``ids``, ``len`` and ``subset`` as :class:`ImageData`; ``files`` are the paths
    to read and ``channels``/``size`` what each image is decoded to (the model's input).
    """

    files: list[str]
    labels: torch.Tensor
    ids: list[str]
    channels: int
    size: tuple[int, int]

    def __post_init__(self) -> None:
        if len(self.files) != len(self.labels) or len(self.ids) != len(self.labels):
            raise ValueError("files, labels and ids must have the same length")
        self.size = (int(self.size[0]), int(self.size[1]))

    in_memory = False

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | list[int]) -> FileData:
        idx = torch.as_tensor(index, dtype=torch.long).tolist()
        return FileData([self.files[i] for i in idx], self.labels[idx], [self.ids[i] for i in idx],
                        self.channels, self.size)  # fmt: skip

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.channels, self.size[0], self.size[1]

    def load(self, threads: int | None = None) -> ImageData:
        """Decode every file into memory (bad files raise :class:`~cnnkit.errors.DataError`)."""
        from .images import decode_files

        images, failed = decode_files(self.files, self.channels, self.size, threads=threads)
        if failed:
            from ..errors import DataError

            i, reason = failed[0]
            raise DataError(f"cannot read image {self.files[i]!r}: {reason}")
        return ImageData(torch.from_numpy(images), self.labels, list(self.ids))

    @property
    def images(self) -> torch.Tensor:
        """All images decoded now (for code written for :class:`ImageData`; prefer a loader)."""
        return self.load().images


Split = ImageData | FileData


@dataclass
class DatasetSplits:
    """A dataset ready for training: train/val/test splits plus what a model needs to know."""

    name: str
    classes: list[str]
    train: ImageData | FileData
    val: ImageData | FileData
    test: ImageData | FileData
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)  # source, split method, skipped files, ...

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape

    @property
    def in_memory(self) -> bool:
        """True when the splits are decoded tensors, False when they stream from files."""
        return self.train.in_memory

    def split(self, name: str) -> ImageData | FileData:
        if name not in ("train", "val", "test"):
            from ..errors import DataError

            raise DataError(f"unknown split {name!r}", hint="use train, val or test")
        return getattr(self, name)

    def split_ids(self) -> dict[str, list[str]]:
        return {s: list(self.split(s).ids) for s in ("train", "val", "test")}
