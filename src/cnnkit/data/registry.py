"""Dataset registry and :func:`load_dataset`: a name in, train/val/test splits out.

A source registers a loader returning :class:`RawDataset` (the splits it ships with, as uint8
tensors). :func:`load_dataset` then does what every source shares: pick channels and size for the
model, carve validation/test splits (stratified, seeded) where the source has none, and compute the
train split's mean/std.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..errors import DataError, suggest
from .base import DatasetSplits, ImageData
from .transforms import channel_stats, resize_uint8


@dataclass
class RawDataset:
    """What a source loader returns: its own splits (any of train/val/test/all) and class names."""

    classes: list[str]
    splits: dict[str, ImageData]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Callable[..., RawDataset]
    description: str
    num_classes: int
    image_shape: tuple[int, int, int]
    split_sizes: dict[str, int]
    default_augment: str = "none"
    hflip_ok: bool = True


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str,
    description: str,
    num_classes: int,
    image_shape: tuple[int, int, int],
    split_sizes: dict[str, int],
    default_augment: str = "none",
    hflip_ok: bool = True,
) -> Callable[[Callable[..., RawDataset]], Callable[..., RawDataset]]:
    """Decorator registering a loader ``fn(root, download) -> RawDataset``."""

    def deco(fn: Callable[..., RawDataset]) -> Callable[..., RawDataset]:
        _DATASETS[name] = DatasetEntry(
            name, fn, description, num_classes, image_shape, split_sizes, default_augment, hflip_ok
        )
        return fn

    return deco


def _ensure_loaded() -> None:
    from . import _sources  # noqa: F401  (importing registers the sources)


def list_datasets() -> list[DatasetEntry]:
    _ensure_loaded()
    return [_DATASETS[k] for k in sorted(_DATASETS)]


def dataset_entry(name: str) -> DatasetEntry | None:
    """The registry entry for a plain name, ``None`` for ``folder:``/``csv:`` specs."""
    _ensure_loaded()
    if ":" in name:
        prefix = name.split(":", 1)[0]
        if prefix in _PREFIXES:
            return None
    if name not in _DATASETS:
        raise DataError(
            f"unknown dataset {name!r}",
            hint=suggest(name, list(_DATASETS) + ["folder:PATH", "csv:FILE"]) + " (`cnnkit datasets` lists them)",
        )
    return _DATASETS[name]


# Prefix sources (``folder:PATH``, ``csv:FILE``) register a loader taking the text after the colon.
_PREFIXES: dict[str, Callable[..., RawDataset]] = {}


def register_prefix(prefix: str) -> Callable[[Callable[..., RawDataset]], Callable[..., RawDataset]]:
    def deco(fn: Callable[..., RawDataset]) -> Callable[..., RawDataset]:
        _PREFIXES[prefix] = fn
        return fn

    return deco


def default_data_root() -> str:
    import os
    from pathlib import Path

    return os.environ.get("CNNKIT_DATA") or str(Path.home() / ".cache" / "cnnkit" / "data")


def load_raw(name: str, root: str | None = None, download: bool = False, **kw: Any) -> RawDataset:
    """The source's own splits, before resizing and re-splitting."""
    entry = dataset_entry(name)
    root = root or default_data_root()
    if entry is None:
        prefix, arg = name.split(":", 1)
        return _PREFIXES[prefix](arg, **kw)
    return entry.loader(root=root, download=download)


def _to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 1:  # ITU-R 601 luma, as PIL's "L" conversion
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images[:, :3].float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if c == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    raise DataError(f"cannot convert {c}-channel images to {channels} channels")


def _prepare(d: ImageData, channels: int | None, size: tuple[int, int] | None) -> ImageData:
    x = d.images
    if channels is not None:
        x = _to_channels(x, channels)
    if size is not None:
        x = resize_uint8(x, size)
    return ImageData(x, d.labels, d.ids)


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (rest, part1, part2) with part sizes given as fractions of the whole, stratified."""
    n = len(labels)
    idx = np.arange(n)
    f1, f2 = fractions
    strat = labels if np.bincount(labels).min() >= 2 else None  # sklearn needs 2 per class to stratify
    parts: list[np.ndarray] = []
    rest = idx
    for k, f in enumerate((f1, f2)):
        if f <= 0:
            parts.append(np.array([], dtype=np.int64))
            continue
        size = max(1, round(f * n))
        s = None if strat is None else labels[rest]
        if s is not None and (np.bincount(s).min() < 2 or size < len(np.unique(s))):
            s = None
        rest, part = train_test_split(rest, test_size=size, random_state=seed + k, stratify=s)
        parts.append(np.sort(part))
    return np.sort(rest), parts[0], parts[1]


def load_dataset(
    name: str = "digits",
    input_size: tuple[int, int] | int | None = None,
    channels: int | None = None,
    val_split: float = 0.15,
    test_split: float = 0.15,
    seed: int = 0,
    root: str | None = None,
    download: bool = False,
    **kw: Any,
) -> DatasetSplits:
    """Load a dataset by name as in-memory train/val/test splits at the requested size.

    Splits the source does not provide are carved out stratified and seeded: ``test_split`` and
    ``val_split`` are fractions of the source's data (of ``train`` when it has its own test split).
    """
    raw = load_raw(name, root=root, download=download, **kw)
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    splits = {k: _prepare(v, channels, input_size) for k, v in raw.splits.items()}
    info = dict(raw.info)
    if "all" in splits:
        pool = splits.pop("all")
        rest, val_idx, test_idx = stratified_split(pool.labels.numpy(), (val_split, test_split), seed)
        splits = {"train": pool.subset(rest), "val": pool.subset(val_idx), "test": pool.subset(test_idx)}
        info["split"] = f"stratified {1 - val_split - test_split:.0%}/{val_split:.0%}/{test_split:.0%}, seed {seed}"
    else:
        if "train" not in splits:
            raise DataError(f"dataset {name!r} has no training split")
        if "val" not in splits:
            tr = splits["train"]
            rest, val_idx, _ = stratified_split(tr.labels.numpy(), (val_split, 0.0), seed)
            splits["train"], splits["val"] = tr.subset(rest), tr.subset(val_idx)
            info["split"] = f"val carved from train ({val_split:.0%}, stratified, seed {seed})"
        if "test" not in splits:
            tr = splits["train"]
            rest, _, test_idx = stratified_split(tr.labels.numpy(), (0.0, test_split), seed)
            splits["train"], splits["test"] = tr.subset(rest), tr.subset(test_idx)
    if len(splits["train"]) == 0:
        raise DataError(f"dataset {name!r} has no training images")
    mean, std = channel_stats(splits["train"].images)
    return DatasetSplits(name, list(raw.classes), splits["train"], splits["val"], splits["test"], mean, std, info)
