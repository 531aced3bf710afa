"""Mini-batches on the training device, from memory (:class:`TensorLoader`) or from files (:class:`StreamLoader`).

In memory, the whole split lives on the device as uint8 (a 50k CIFAR-10 split is 150 MB); each batch
is a slice, converted to float, augmented and normalised there. Streamed, worker threads (or
processes, ``workers``) decode each batch's files, and the batch then gets the very same treatment on
the device. Both shuffle with a seeded permutation per epoch and shard it by ``rank``/``world_size``
like ``DistributedSampler``, so given the same pixels they yield the same batches.
:func:`make_loader` picks the right one for a split.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from ..errors import DataError
from .augment import Augment
from .base import FileData, ImageData
from .images import default_threads
from .transforms import Normalize


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator determined by (seed, epoch, stream): resuming at an epoch replays it exactly."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1))
    return g


def epoch_indices(n: int, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The sample order of one epoch on one rank: a seeded permutation (or 0..n-1), sharded."""
    if shuffle:
        idx = torch.randperm(n, generator=epoch_generator(seed, epoch))
    else:
        idx = torch.arange(n)
    if world_size > 1:
        # Pad so every rank gets the same number of samples, then take every world_size-th.
        per = -(-n // world_size)
        idx = torch.cat([idx, idx[: per * world_size - n]])[rank::world_size]
    return idx


def to_model_input(x8: torch.Tensor, augment: Augment | None, normalize: Normalize, gen: torch.Generator) -> torch.Tensor:
    """A uint8 batch -> augmented, normalised float batch (the same steps for every loader).

    Crops and flips only move pixels, so they run on the uint8 batch (a quarter of the bytes);
    everything else runs on floats in [0, 1]. Normalisation is in place: no extra tensors.
    """
    aug = augment if augment is not None and augment.enabled else None
    if aug is not None and aug.moves_pixels_only:
        x8 = aug(x8, gen)
    x = x8.float().div_(255.0)
    if aug is not None and not aug.moves_pixels_only:
        x = aug(x, gen)
    return normalize.inplace(x)


class _EpochBatches:
    """What both loaders share: the batch options, seeded per-epoch order, rank sharding, batch count.

    Subclasses set ``labels`` and call this ``__init__`` with the options every loader takes.
    """

    labels: torch.Tensor

    def __init__(
        self,
        batch_size: int,
        normalize: Normalize,
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.normalize = normalize
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.device = torch.device(device)
        self.epoch = 0
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation to replay (as DistributedSampler)."""
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        return epoch_indices(len(self.labels), self.shuffle, self.seed, self.epoch, self.rank, self.world_size)

    def _model_input(self, x8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A uint8 batch on the device -> the float batch the model takes (augmented, normalised, laid out)."""
        x = to_model_input(x8, self.augment, self.normalize, gen)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __len__(self) -> int:
        n = len(self._indices()) if self.world_size > 1 else len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self._indices())


class TensorLoader(_EpochBatches):
    """Iterate ``(x, y)`` batches: ``x`` float normalised ``N x C x H x W``, ``y`` int64, on ``device``.

    ``options``: ``shuffle``, ``augment``, ``drop_last``, ``seed``, ``device``, ``rank``, ``world_size``,
    ``channels_last`` (see :class:`_EpochBatches`).
    """

    def __init__(self, data: ImageData, batch_size: int, normalize: Normalize, **options: Any) -> None:
        super().__init__(batch_size, normalize, **options)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = self._indices().to(self.device)
        gen = epoch_generator(self.seed, self.epoch, stream=1)
        for b in range(len(self)):
            j = idx[b * self.batch_size : (b + 1) * self.batch_size]
            # index_select, not images[j]: the same rows, many times faster on the CPU
            yield self._model_input(self.images.index_select(0, j), gen), self.labels.index_select(0, j)


class BatchDecoder(torch.utils.data.Dataset):
    """Indexed by a list of sample indices, returns that batch decoded: ``(uint8 x, y, failures)``."""

    def __init__(self, data: FileData, threads: int = 1) -> None:
        self.data = data  # data.decode reads the samples (files, or tar shards for a ShardData)
        self.files, self.labels = data.files, data.labels
        self.channels, self.size = data.channels, data.size
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
        if self.threads > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads)
        arr, failed = self.data.decode(idx, threads=self.threads, executor=self._pool)
        return torch.from_numpy(arr), self.labels[idx], [(idx[j], reason) for j, reason in failed]

    def __getstate__(self) -> dict:  # worker processes make their own pool
        return {**self.__dict__, "_pool": None}


class StreamLoader(_EpochBatches):
    """:class:`TensorLoader`'s contract for a :class:`FileData` split: files decoded batch by batch.

    ``workers=0`` decodes in a pool of threads of this process, a few batches ahead of the model
    (PIL releases the GIL while decoding); ``workers>0`` uses a ``torch.utils.data.DataLoader`` with
    that many processes, each decoding whole batches. Augmentation and normalisation run after
    collation, on the device, exactly as in :class:`TensorLoader`. A file that fails to decode is
    dropped from its batch with a warning (an error with ``strict``).
    """

    def __init__(
        self, data: FileData, batch_size: int, normalize: Normalize, workers: int = 0, threads: int | None = None,
        prefetch: int = 2, strict: bool = False, **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(batch_size, normalize, **options)
        self.data = data
        self.labels = data.labels
        self.workers = workers
        self.threads = threads or default_threads()
        self.prefetch = max(1, prefetch)
        self.strict = strict
        self.skipped: dict[str, str] = {}  # files that failed while streaming: path -> reason

    def _batches(self) -> list[list[int]]:
        idx = self._indices()
        return [idx[b * self.batch_size : (b + 1) * self.batch_size].tolist() for b in range(len(self))]

    def _decoded(self, batches: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]]:
        if self.workers > 0:
            loader = torch.utils.data.DataLoader(
                BatchDecoder(self.data, threads=1), batch_size=None, sampler=batches, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=self.prefetch,
            )  # fmt: skip
            yield from loader
            return
        dec = BatchDecoder(self.data, threads=self.threads)
        # One thread runs ahead, handing each batch's files to the decoding pool.
        try:
            with ThreadPoolExecutor(1) as ahead:
                pending: deque[Future] = deque()
                it = iter(batches)
                for b in it:
                    pending.append(ahead.submit(dec.__getitem__, b))
                    if len(pending) > self.prefetch:
                        break
                while pending:
                    out = pending.popleft().result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.append(ahead.submit(dec.__getitem__, nxt))
                    yield out
        finally:
            if dec._pool is not None:
                dec._pool.shutdown()

    def _drop(self, x: torch.Tensor, y: torch.Tensor, failed: list[tuple[int, str]], idx: list[int]):
        for i, reason in failed:
            path = self.data.files[i]
            if self.strict:
                raise DataError(f"bad file {path!r}: {reason}", hint="fix or remove it, or run without --strict")
            if path not in self.skipped:
                self.skipped[path] = reason
                warnings.warn(f"skipped unreadable image {path}: {reason}", stacklevel=3)
        bad = {i for i, _ in failed}
        keep = torch.tensor([i not in bad for i in idx])
        return x[keep], y[keep]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self._batches()
        gen = epoch_generator(self.seed, self.epoch, stream=1)
        for b, (x8, y, failed) in zip(batches, self._decoded(batches), strict=False):
            if failed:
                x8, y = self._drop(x8, y, failed, b)
                if len(y) == 0:
                    continue
            yield self._model_input(x8.to(self.device, non_blocking=True), gen), y.to(self.device, non_blocking=True)


def pixel_batches(
    data: ImageData | FileData, batch_size: int = 256, workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(uint8 images N x C x H x W, positions in the split)`` in order, on the CPU: a split read batch by batch.

    For what works on pixels rather than the model's float input (evaluation with TTA and ensembles,
    feature extraction): an in-memory split is sliced, a streamed one is decoded by a
    :class:`StreamLoader` (threads or ``workers``, prefetching) so only the batches in flight are in
    memory. An unreadable file is an error (``strict``): results must line up with every id.
    """
    if isinstance(data, ImageData):
        for s in range(0, len(data), batch_size):
            yield data.images[s : s + batch_size], torch.arange(s, min(s + batch_size, len(data)))
        return
    c = data.channels
    loader = StreamLoader(data, batch_size, Normalize((0.0,) * c, (1.0,) * c), workers=workers, strict=True)
    batches = loader._batches()
    for b, (x8, _y, failed) in zip(batches, loader._decoded(batches), strict=False):
        if failed:
            loader._drop(x8, _y, failed, b)  # raises DataError naming the file (strict)
        yield x8, torch.as_tensor(b, dtype=torch.long)


def pixels_of(data: ImageData | FileData, indices: list[int]) -> torch.Tensor:
    """uint8 ``len(indices) x C x H x W`` pixels of a few samples of a split (only those are decoded)."""
    if isinstance(data, ImageData):
        return data.images[torch.as_tensor(indices, dtype=torch.long)]
    arr, failed = data.decode(indices)
    if failed:
        j, reason = failed[0]
        raise DataError(f"cannot read image {data.files[indices[j]]!r}: {reason}")
    return torch.from_numpy(arr)


def make_loader(
    data: ImageData | FileData, batch_size: int, normalize: Normalize, workers: int = 0, strict: bool = False,
    **options: Any,
) -> TensorLoader | StreamLoader:  # fmt: skip
    """The loader for a split: :class:`TensorLoader` in memory, :class:`StreamLoader` for files.

    ``options`` are the loaders' shared ones (``shuffle``, ``augment``, ``seed``, ``device``, ...);
    ``workers`` and ``strict`` apply to streamed files only. A pack split with a ``shuffle_buffer``
    (``--shuffle-buffer N``) is read shard by shard through that buffer when shuffled
    (:class:`~cnnkit.data.shard_stream.BufferedShardLoader`).
    """
    if isinstance(data, FileData):
        if options.get("shuffle") and getattr(data, "shuffle_buffer", 0) > 0:
            from .shard_stream import BufferedShardLoader

            return BufferedShardLoader(data, batch_size, normalize, workers=workers, strict=strict, **options)
        return StreamLoader(data, batch_size, normalize, workers=workers, strict=strict, **options)
    return TensorLoader(data, batch_size, normalize, **options)
