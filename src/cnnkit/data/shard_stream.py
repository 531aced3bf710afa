"""Reading a pack in sequence through a shuffle buffer (WebDataset style): ``--shuffle-buffer N``.

Two ways to read a shuffled epoch of ``--data shards:DIR``:

* **by offset** (the default, ``--shuffle-buffer 0``): :class:`~cnnkit.data.loader.StreamLoader` reads
  each sample with one ``pread`` at its recorded offset, in an exact seeded permutation, split across
  ranks as ``DistributedSampler`` does. On a local disk, an SSD or the page cache small random reads
  cost next to nothing, and the order is a true shuffle: the better default.
* **in sequence** (``--shuffle-buffer N``, N > 0; this module): for storage where random reads are
  slow (network file systems, spinning disks, object stores mounted as files). Each epoch the shards
  are taken in a seeded order and their samples concatenated; that sequence is cut into equal
  contiguous slices, one per rank, and each rank's slice into one per worker. A reader goes through
  its slice in large sequential reads (up to ``CHUNK_BYTES``), passes the still-encoded samples
  through a seeded shuffle buffer of N samples, and decodes a batch as it leaves the buffer. Across
  ranks every sample comes exactly once per epoch, plus, when the count does not divide by the
  number of ranks, the padding ``DistributedSampler`` also adds (the sequence's first samples again)
  so every rank takes the same number of steps. The order is only as random as the shard order and
  the buffer make it (a sample leaves the buffer no earlier than N places before where it was read,
  usually within a few N after). Memory: N encoded samples per reader, and the batches in flight.

The order depends on (seed, epoch, rank, worker, number of workers) only: an epoch can be replayed.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .images import BadImage, _quiet_pil, default_threads
from .loader import _EpochBatches, epoch_generator
from .shards import ShardData, _read, decode_bytes
from .transforms import Normalize

CHUNK_BYTES = 4 << 20  # one read covers consecutive samples up to this many bytes
SHARD_ORDER_STREAM = 2  # epoch_generator stream of the shard order (1 is augmentation)


def rank_sequence(data: ShardData, seed: int, epoch: int, shuffle: bool = True, rank: int = 0,
                  world_size: int = 1) -> np.ndarray:  # fmt: skip
    """Positions (into ``data``) one rank reads in an epoch, in reading order, before the shuffle buffer.

    Shards in a seeded order (file order without ``shuffle``), each shard's samples in file order,
    padded to a multiple of ``world_size`` with the sequence's first samples, then rank ``rank``'s
    contiguous slice.
    """
    order = np.lexsort((data.offset, data.shard))  # samples grouped by shard, each in file order
    sorted_shards = data.shard[order]
    shards = np.unique(sorted_shards)
    if shuffle and len(shards) > 1:
        perm = torch.randperm(len(shards), generator=epoch_generator(seed, epoch, SHARD_ORDER_STREAM)).numpy()
        shards = shards[perm]
    lo, hi = np.searchsorted(sorted_shards, shards, "left"), np.searchsorted(sorted_shards, shards, "right")
    seq = np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)]) if len(shards) else order
    n = len(seq)
    per = -(-n // world_size)
    if per * world_size > n:
        seq = np.concatenate([seq, np.resize(seq, per * world_size - n)])
    return seq[rank * per : (rank + 1) * per]


def worker_slice(seq: np.ndarray, worker: int, workers: int) -> np.ndarray:
    """Worker ``worker``'s contiguous part of a rank's sequence (the first ``len % workers`` parts one longer)."""
    return np.array_split(seq, workers)[worker]


def read_in_sequence(data: ShardData, positions: np.ndarray) -> Iterator[tuple[int, bytes]]:
    """``(position, encoded bytes)`` of each sample, consecutive samples of a shard fetched in one read."""
    shard, off, nb, paths = data.shard, data.offset, data.nbytes, data.shard_paths
    i, n = 0, len(positions)
    while i < n:
        p = positions[i]
        start, j = int(off[p]), i + 1
        while j < n:
            q, prev = positions[j], positions[j - 1]
            if shard[q] != shard[p] or off[q] < off[prev] or off[q] + nb[q] - start > CHUNK_BYTES:
                break
            j += 1
        last = positions[j - 1]
        path = paths[int(shard[p])]
        try:
            buf = _read(path, start, int(off[last] + nb[last]) - start)
        except OSError as e:
            raise DataError(
                f"cannot read shard {path!r}: {e.strerror or e}", hint="is the pack folder still there?"
            ) from None
        for q in positions[i:j]:
            a = int(off[q]) - start
            yield int(q), buf[a : a + int(nb[q])]
        i = j


def shuffle_buffer(items: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """WebDataset's shuffle: fill a buffer of ``size``, then emit a random item and put the next one in its place."""
    buf: list[Any] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        k = int(rng.integers(len(buf)))
        buf[k], item = item, buf[k]
        yield item
    rng.shuffle(buf)  # the end of the slice: what is left, in random order
    yield from buf


class ShardStream(torch.utils.data.IterableDataset):
    """One epoch of one rank as an iterable of decoded batches ``(uint8 x, y, positions, failures)``.

    In a ``DataLoader`` with workers, each worker reads its own slice (:func:`worker_slice`).
    """

    def __init__(self, data: ShardData, batch_size: int, buffer: int, seed: int, epoch: int, shuffle: bool,
                 rank: int, world_size: int, drop_last: bool = False, threads: int = 1) -> None:  # fmt: skip
        super().__init__()
        self.data, self.batch_size, self.buffer = data, batch_size, buffer
        self.seed, self.epoch, self.shuffle = seed, epoch, shuffle
        self.rank, self.world_size, self.drop_last, self.threads = rank, world_size, drop_last, threads

    def samples(self, worker: int = 0, workers: int = 1) -> Iterator[tuple[int, bytes]]:
        """``(position, bytes)`` in the order this worker hands them out (after the shuffle buffer)."""
        seq = worker_slice(rank_sequence(self.data, self.seed, self.epoch, self.shuffle, self.rank, self.world_size),
                           worker, workers)  # fmt: skip
        items = read_in_sequence(self.data, seq)
        if not self.shuffle or self.buffer <= 1:
            return items
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, workers])
        return shuffle_buffer(items, self.buffer, rng)

    def _decode(self, batch: list[tuple[int, bytes]], pool: ThreadPoolExecutor | None):
        d = self.data
        h, w = d.size
        out = np.zeros((len(batch), d.channels, h, w), dtype=np.uint8)

        def one(j: int) -> tuple[int, str] | None:
            try:
                out[j] = decode_bytes(batch[j][1], d.raw_shape, d.channels, d.size)
            except BadImage as e:
                return j, e.reason
            return None

        with _quiet_pil():
            res = (
                list(pool.map(one, range(len(batch))))
                if pool is not None
                else [one(j) for j in range(len(batch))]
            )
        pos = torch.as_tensor([p for p, _ in batch], dtype=torch.long)
        failed = [(int(pos[r[0]]), r[1]) for r in res if r is not None]
        return torch.from_numpy(out), d.labels[pos], pos, failed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, str]]]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        try:
            batch: list[tuple[int, bytes]] = []
            for item in self.samples(worker, workers):
                batch.append(item)
                if len(batch) == self.batch_size:
                    yield self._decode(batch, pool)
                    batch = []
            if batch and not self.drop_last:
                yield self._decode(batch, pool)
        finally:
            if pool is not None:
                pool.shutdown()


def _read_ahead(it: Iterator[Any], n: int) -> Iterator[Any]:
    """``it``'s items, produced by one background thread up to ``n`` ahead (reading and decoding overlap training)."""
    done = object()
    with ThreadPoolExecutor(1) as ex:  # one thread: the generator is never entered twice at once
        pending = deque(ex.submit(next, it, done) for _ in range(n))
        while True:
            item = pending.popleft().result()
            if item is done:
                return
            pending.append(ex.submit(next, it, done))
            yield item


class BufferedShardLoader(_EpochBatches):
    """:class:`~cnnkit.data.loader.StreamLoader`'s contract for a pack read in sequence (see the module docstring).

    ``workers=0`` reads in this process (decoding each batch with ``threads``); ``workers>0`` runs one
    :class:`ShardStream` slice per ``DataLoader`` worker process. A sample that fails to decode is
    dropped with a warning (an error with ``strict``).
    """

    def __init__(self, data: ShardData, batch_size: int, normalize: Normalize, workers: int = 0,
                 threads: int | None = None, prefetch: int = 2, strict: bool = False, **options: Any) -> None:  # fmt: skip
        super().__init__(batch_size, normalize, **options)
        self.data, self.labels = data, data.labels
        self.buffer = int(getattr(data, "shuffle_buffer", 0))
        self.workers, self.threads, self.prefetch, self.strict = (
            workers,
            threads or default_threads(),
            max(1, prefetch),
            strict,
        )
        self.skipped: dict[str, str] = {}

    def stream(self) -> ShardStream:
        """This epoch's :class:`ShardStream` for this rank."""
        return ShardStream(self.data, self.batch_size, self.buffer, self.seed, self.epoch, self.shuffle, self.rank,
                           self.world_size, self.drop_last, 1 if self.workers else self.threads)  # fmt: skip

    @property
    def num_samples(self) -> int:
        return -(-len(self.labels) // self.world_size)

    def __len__(self) -> int:
        parts = np.array_split(np.arange(self.num_samples), max(1, self.workers))
        b = self.batch_size
        return sum(len(p) // b if self.drop_last else -(-len(p) // b) for p in parts)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        st = self.stream()
        if self.workers > 0:
            it: Any = torch.utils.data.DataLoader(st, batch_size=None, num_workers=self.workers,
                                                  pin_memory=self.device.type == "cuda", prefetch_factor=self.prefetch)  # fmt: skip
        else:
            it = _read_ahead(iter(st), self.prefetch)
        gen = epoch_generator(self.seed, self.epoch, stream=1)
        for x8, y, pos, failed in it:
            if failed:
                x8, y = self._drop(x8, y, pos, failed)
                if len(y) == 0:
                    continue
            yield (
                self._model_input(x8.to(self.device, non_blocking=True), gen),
                y.to(self.device, non_blocking=True),
            )

    def _drop(self, x8: torch.Tensor, y: torch.Tensor, pos: torch.Tensor, failed: list[tuple[int, str]]):
        for p, reason in failed:
            name = self.data.files[p]
            if self.strict:
                raise DataError(
                    f"bad sample {name!r}: {reason}", hint="re-pack the data, or run without --strict"
                )
            if name not in self.skipped:
                self.skipped[name] = reason
                warnings.warn(f"skipped unreadable sample {name}: {reason}", stacklevel=3)
        keep = ~torch.isin(pos, torch.as_tensor([p for p, _ in failed], dtype=torch.long))
        return x8[keep], y[keep]
