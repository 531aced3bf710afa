"""Data: dataset registry, in-memory and streamed splits, batched augmentation, image reading."""

from .augment import Augment
from .base import DatasetSplits, FileData, ImageData
from .images import read_image
from .loader import StreamLoader, TensorLoader, make_loader
from .registry import (
    RawDataset,
    dataset_entry,
    list_datasets,
    load_dataset,
    register_dataset,
    register_prefix,
)
from .transforms import Normalize, channel_stats, resize_uint8

__all__ = [
    "Augment",
    "DatasetSplits",
    "FileData",
    "ImageData",
    "Normalize",
    "RawDataset",
    "StreamLoader",
    "TensorLoader",
    "channel_stats",
    "dataset_entry",
    "list_datasets",
    "load_dataset",
    "make_loader",
    "read_image",
    "register_dataset",
    "register_prefix",
    "resize_uint8",
]
