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

    def __repr__(self) -> str:  # the dataclass repr would print every pixel and id
        return f"ImageData({len(self)} images of {_shape(self.image_shape)}, uint8, in memory)"


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

    def decode(self, indices: Any = None, threads: int | None = None, executor: Any = None) -> tuple[Any, list]:
        """Decode samples (all by default) to a uint8 ``N x C x H x W`` array; failures as ``(position, reason)``.

        The one way loaders read a split, so a subclass can store samples elsewhere (tar shards).
        """
        from .images import decode_files

        files = self.files if indices is None else [self.files[i] for i in indices]
        return decode_files(files, self.channels, self.size, threads=threads, executor=executor)

    def load(self, threads: int | None = None) -> ImageData:
        """Decode every file into memory (bad files raise :class:`~cnnkit.errors.DataError`)."""
        images, failed = self.decode(threads=threads)
        if failed:
            from ..errors import DataError

            i, reason = failed[0]
            raise DataError(f"cannot read image {self.files[i]!r}: {reason}")
        return ImageData(torch.from_numpy(images), self.labels, list(self.ids))

    @property
    def images(self) -> torch.Tensor:
        """All images decoded now (for code written for :class:`ImageData`; prefer a loader)."""
        return self.load().images

    def __repr__(self) -> str:
        return f"FileData({len(self)} image files, decoded to {_shape(self.image_shape)} batch by batch)"


def _shape(chw: tuple[int, int, int]) -> str:
    return "x".join(map(str, chw))


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

    # ---- display: a short repr, and a table with sample images in a notebook
    def __repr__(self) -> str:
        sizes = " / ".join(f"{len(self.split(s))} {s}" for s in ("train", "val", "test"))
        where = "in memory" if self.in_memory else "streamed from files"
        return (f"DatasetSplits({self.name!r}: {self.num_classes} classes, {_shape(self.image_shape)}, {sizes}, "
                f"{where})")  # fmt: skip

    def _repr_html_(self) -> str:
        from .._html import esc, fields, section, shorten, table, thumbnails

        rows = [("classes", f"{self.num_classes}: {shorten(self.classes)}"),
                ("images", f"{_shape(self.image_shape)} (C x H x W), uint8; "
                           + ("in memory" if self.in_memory else "streamed from files")),
                ("mean / std", f"{_numbers(self.mean)} / {_numbers(self.std)}")]  # fmt: skip
        rows += [(k, v) for k, v in self.info.items() if k in ("source", "split") and v]
        counts = [self.split(s).class_counts(self.num_classes) for s in ("train", "val", "test")]
        shown = range(min(self.num_classes, 20))
        per_class = table(["split", "images", *[self.classes[c] for c in shown]],
                          [[s, len(self.split(s)), *[n[c] for c in shown]]
                           for s, n in zip(("train", "val", "test"), counts, strict=True)],
                          right=[False] + [True] * (len(shown) + 1),
                          caption="images per class" + ("" if self.num_classes <= 20 else " (first 20 classes)"))  # fmt: skip
        parts = [fields(rows), per_class]
        notes = [*self.info.get("messages", []), *self.info.get("warnings", [])]
        parts += [f"<div>{esc(n)}</div>" for n in notes]
        if self.in_memory and len(self.train):  # one training image of each class (first 12 classes)
            labels = self.train.labels.tolist()
            first = [labels.index(c) for c in shown[:12] if c in labels]
            parts.append(thumbnails(self.train.images[first], [self.classes[labels[i]] for i in first]))
        return section(f"dataset {self.name}", *parts)


def _numbers(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")" if values else "-"
