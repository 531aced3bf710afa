"""Mini-batches from an in-memory split, on the training device.

The whole split lives on the device as uint8 (a 50k CIFAR-10 split is 150 MB); each batch is a
slice, converted to float, augmented and normalised there. Shuffling is a seeded permutation per
epoch, and ``rank``/``world_size`` shard it like ``DistributedSampler`` so the same loader serves
distributed training.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .augment import Augment
from .base import ImageData
from .transforms import Normalize


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator determined by (seed, epoch, stream): resuming at an epoch replays it exactly."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1))
    return g


class TensorLoader:
    """Iterate ``(x, y)`` batches: ``x`` float normalised ``N x C x H x W``, ``y`` int64, on ``device``."""

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        normalize: Normalize,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = batch_size
        self.normalize = normalize
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation to replay (as DistributedSampler)."""
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        n = len(self.labels)
        if self.shuffle:
            idx = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch))
        else:
            idx = torch.arange(n)
        if self.world_size > 1:
            # Pad so every rank gets the same number of samples, then take every world_size-th.
            per = -(-n // self.world_size)
            idx = torch.cat([idx, idx[: per * self.world_size - n]])[self.rank :: self.world_size]
        return idx

    def __len__(self) -> int:
        n = len(self._indices()) if self.world_size > 1 else len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self._indices())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices().to(self.device)
        gen = epoch_generator(self.seed, self.epoch, stream=1)
        for b in range(len(self)):
            j = idx[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[j].float().div_(255.0)
            if self.augment is not None and self.augment.enabled:
                x = self.augment(x, gen)
            x = self.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[j]
