"""Data: dataset registry, in-memory splits, batched augmentation, image reading."""

from .augment import Augment
from .base import DatasetSplits, ImageData
from .loader import TensorLoader
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
    "ImageData",
    "Normalize",
    "RawDataset",
    "TensorLoader",
    "channel_stats",
    "dataset_entry",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "register_prefix",
    "resize_uint8",
]
