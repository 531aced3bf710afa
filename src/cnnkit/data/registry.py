"""Dataset registry and :func:`load_dataset`: a name in, train/val/test splits out.

A source registers a loader returning :class:`RawDataset` (the splits it ships with, as uint8
tensors, or as :class:`FileData` to stream). :func:`load_dataset` then does what every source shares:
pick channels and size for the model, carve validation/test splits (stratified, seeded) where the
source has none, compute the train split's mean/std and report class imbalance.

Named sources (``digits``, ``mnist``, ``cifar10``, ...) register with :func:`register_dataset`; prefix
sources (``folder:PATH``, ``csv:FILE``) with :func:`register_prefix`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import DataError, suggest
from .base import DatasetSplits, FileData, ImageData
from .transforms import channel_stats, resize_uint8

IMBALANCE_RATIO = 3.0  # warn when the largest class has more than this many times the smallest's images
STATS_SAMPLE = 2000  # streamed data: mean/std estimated on this many (seeded) training images


@dataclass
class RawDataset:
    """What a source loader returns: its own splits (any of train/val/test/all) and class names."""

    classes: list[str]
    splits: dict[str, ImageData | FileData]
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
    files: Callable[[str], list[str]] | None = None  # expected files under a data root (None: built in)


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str,
    description: str,
    num_classes: int,
    image_shape: tuple[int, int, int],
    split_sizes: dict[str, int],
    default_augment: str = "none",
    hflip_ok: bool = True,
    files: Callable[[str], list[str]] | None = None,
) -> Callable[[Callable[..., RawDataset]], Callable[..., RawDataset]]:
    """Decorator registering a loader ``fn(root, download) -> RawDataset``.

    ``files(root)`` lists the files the source reads under a data root (``cnnkit datasets`` shows
    where they are and whether they are there); ``None`` for data that ships with a package.
    """

    def deco(fn: Callable[..., RawDataset]) -> Callable[..., RawDataset]:
        _DATASETS[name] = DatasetEntry(
            name, fn, description, num_classes, image_shape, split_sizes, default_augment, hflip_ok, files
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
            hint=suggest(name, list(_DATASETS) + ["folder:PATH", "csv:FILE", "shards:DIR"]) + " (`cnnkit datasets` lists them)",
        )
    return _DATASETS[name]


# Prefix sources (``folder:PATH``, ``csv:FILE``) register a loader taking the text after the colon.
_PREFIXES: dict[str, Callable[..., RawDataset]] = {}


def register_prefix(prefix: str) -> Callable[[Callable[..., RawDataset]], Callable[..., RawDataset]]:
    def deco(fn: Callable[..., RawDataset]) -> Callable[..., RawDataset]:
        _PREFIXES[prefix] = fn
        return fn

    return deco


def dataset_files(entry: DatasetEntry, root: str | None = None) -> tuple[str, str]:
    """Where a dataset's files are (their common folder) and whether they are there."""
    import os

    if entry.files is None:
        return "built in", "present"
    files = entry.files(root or default_data_root())
    have = sum(os.path.isfile(f) for f in files)
    status = "present" if have == len(files) else "missing" if have == 0 else f"{len(files) - have} of {len(files)} missing"
    return os.path.commonpath(files) if len(files) > 1 else os.path.dirname(files[0]), status


def default_data_root() -> str:
    import os
    from pathlib import Path

    return os.environ.get("CNNKIT_DATA") or str(Path.home() / ".cache" / "cnnkit" / "data")


def load_raw(name: str, root: str | None = None, download: bool = False, **kw: Any) -> RawDataset:
    """The source's own splits, before resizing and re-splitting.

    Prefix sources receive ``kw`` (``input_size``, ``channels``, ``strict``, ``memory_budget_mb``, ...)
    so they can decode files straight to the model's size; named sources take ``root`` and ``download``.
    """
    entry = dataset_entry(name)
    root = root or default_data_root()
    if entry is None:
        prefix, arg = name.split(":", 1)
        if not arg.strip():  # `folder:` alone would scan the current folder
            raise DataError(f"--data {name!r} names no {'folder' if prefix == 'folder' else 'file'}",
                            hint=f"e.g. {prefix}:{'images/' if prefix == 'folder' else 'labels.csv'}")  # fmt: skip
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


def _prepare(d: ImageData | FileData, channels: int | None, size: tuple[int, int] | None) -> ImageData | FileData:
    if isinstance(d, FileData):  # decoded later, straight to the target; replace() keeps a subclass (ShardData)
        return dataclasses.replace(d, channels=channels or d.channels, size=tuple(size) if size else d.size)
    x = d.images
    if channels is not None:
        x = _to_channels(x, channels)
    if size is not None:
        x = resize_uint8(x, size)
    return ImageData(x, d.labels, d.ids)


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int, name: str = "the dataset"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (rest, part1, part2) with part sizes given as fractions of the whole, stratified."""
    from sklearn.model_selection import train_test_split  # imported here: it takes seconds to import

    n = len(labels)
    idx = np.arange(n)
    f1, f2 = fractions
    need = sum(max(1, round(f * n)) for f in (f1, f2) if f > 0)
    if need >= n:  # sklearn's own error names test_size, not the option or the data
        raise DataError(
            f"{name} has only {n} image{'s' * (n != 1)}: too few to hold out validation and test images "
            "and still train on some",
            hint="add images, or lower --val-split / --test-split (0 holds out none)",
        )
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
    strict: bool = False,
    memory_budget_mb: float = 4096,
    cache: bool = True,
    **kw: Any,
) -> DatasetSplits:
    """Load a dataset by name as train/val/test splits at the requested size.

    Splits the source does not provide are carved out stratified and seeded: ``test_split`` and
    ``val_split`` are fractions of the source's data (of ``train`` when it has its own test split).

    For ``folder:``/``csv:`` data: ``strict`` makes a bad file an error (otherwise it is skipped and
    listed in ``info["skipped"]``); data that decodes to more than ``memory_budget_mb`` streams from
    disk (:class:`FileData` splits); ``cache`` keeps decoded images on disk for the next run.
    ``info["messages"]`` and ``info["warnings"]`` hold what a caller should print.
    """
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    raw = load_raw(name, root=root, download=download, input_size=input_size, channels=channels, strict=strict,
                   memory_budget_mb=memory_budget_mb, cache=cache, seed=seed, **kw)  # fmt: skip
    _check_memory(name, raw, channels, input_size, memory_budget_mb)
    splits = {k: _prepare(v, channels, input_size) for k, v in raw.splits.items()}
    info = dict(raw.info)
    info["messages"] = list(info.get("messages", []))
    info["warnings"] = list(info.get("warnings", []))
    if "all" in splits:
        pool = splits.pop("all")
        if len(pool) == 0:
            raise DataError(f"dataset {name!r} has no images")
        rest, val_idx, test_idx = stratified_split(pool.labels.numpy(), (val_split, test_split), seed, f"dataset {name!r}")
        splits = {"train": pool.subset(rest), "val": pool.subset(val_idx), "test": pool.subset(test_idx)}
        info["split"] = f"stratified {1 - val_split - test_split:.0%}/{val_split:.0%}/{test_split:.0%}, seed {seed}"
    else:
        if "train" not in splits:
            raise DataError(f"dataset {name!r} has no training split")
        if "val" not in splits:
            tr = splits["train"]
            rest, val_idx, _ = stratified_split(tr.labels.numpy(), (val_split, 0.0), seed, f"the train split of {name!r}")
            splits["train"], splits["val"] = tr.subset(rest), tr.subset(val_idx)
            info["split"] = f"val carved from train ({val_split:.0%}, stratified, seed {seed})"
        if "test" not in splits:
            tr = splits["train"]
            rest, _, test_idx = stratified_split(tr.labels.numpy(), (0.0, test_split), seed, f"the train split of {name!r}")
            splits["train"], splits["test"] = tr.subset(rest), tr.subset(test_idx)
    if len(splits["train"]) == 0:
        raise DataError(f"dataset {name!r} has no training images")
    classes = list(raw.classes)
    if len(classes) < 2:  # a classifier of one class is 100% accurate and has learnt nothing
        raise DataError(
            f"dataset {name!r} has only one class ({', '.join(map(repr, classes)) or 'none'}): nothing to classify",
            hint="give it at least two classes (for folder: data, one subfolder per class)",
        )
    _report_balance(classes, splits, info)
    mean, std = train_stats(splits["train"], seed)
    return DatasetSplits(name, classes, splits["train"], splits["val"], splits["test"], mean, std, info)


def _check_memory(name: str, raw: RawDataset, channels: int | None, size: tuple[int, int] | None,
                  budget_mb: float) -> None:
    """Refuse to resize in-memory images to a size that would need more than the memory budget.

    Folder/CSV data streams from disk beyond the budget; the standard datasets are held in memory, so
    ``--input-size 2048`` on digits would otherwise try to allocate gigabytes.
    """
    if size is None:
        return
    need = 0
    for d in raw.splits.values():
        if isinstance(d, ImageData):
            c = channels or d.images.shape[1]
            need += len(d) * c * size[0] * size[1]
    need_mb = need / 2**20
    if need_mb > budget_mb:
        raise DataError(
            f"dataset {name!r} at {size[0]}x{size[1]} pixels needs {need_mb:,.0f} MB in memory, more than the "
            f"memory budget of {budget_mb:,.0f} MB",
            hint="use a smaller --input-size, raise --memory-budget-mb if the machine has the memory, or stream it: "
            f"`cnnkit pack {name} -o DIR` once, then --data shards:DIR",
        )


def train_stats(train: ImageData | FileData, seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of the training split; streamed data: of a seeded sample of it."""
    if isinstance(train, ImageData):
        return channel_stats(train.images)
    n = len(train)
    if n > STATS_SAMPLE:
        g = torch.Generator().manual_seed(seed)
        train = train.subset(torch.randperm(n, generator=g)[:STATS_SAMPLE].sort().values)
    images, failed = train.decode()
    if failed:
        keep = np.ones(len(images), dtype=bool)
        keep[[i for i, _ in failed]] = False
        images = images[keep]
    return channel_stats(torch.from_numpy(images))


def _report_balance(classes: list[str], splits: dict[str, ImageData | FileData], info: dict[str, Any]) -> None:
    """Class counts over all splits in ``info``; a warning when the classes are badly imbalanced."""
    labels = torch.cat([s.labels for s in splits.values()])
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    info["class_counts"] = dict(zip(classes, counts, strict=False))
    lo, hi = min(counts), max(counts)
    ratio = hi / max(lo, 1)
    info["imbalance"] = round(ratio, 2)
    if len(classes) > 1 and ratio > IMBALANCE_RATIO:
        big, small = classes[counts.index(hi)], classes[counts.index(lo)]
        info["warnings"].append(
            f"class imbalance: {big!r} has {hi:,} images, {small!r} only {lo:,} ({ratio:.1f}x); accuracy will "
            "favour the large classes (look at per-class recall, or collect more of the small ones)"
        )
