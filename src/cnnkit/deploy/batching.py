"""Micro-batching: images from concurrent requests run through the network together.

A network's cost per image falls steeply with the batch size (one weight read serves the whole
batch), so a service waits a few milliseconds for other requests' images before running the first
one (TorchServe's and LitServe's dynamic batching). ``max_batch=1`` turns it off: every image is
run alone, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    busy_s: float = 0.0  # time spent inside the network

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


class MicroBatcher:
    """Collect up to ``max_batch`` items, waiting at most ``max_wait_ms`` after the first, then run ``fn``.

    ``fn(items) -> results`` (one result per item, same order) runs in one worker thread, so the
    event loop keeps accepting requests while the network computes.
    """

    def __init__(
        self, fn: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 32, max_wait_ms: float = 5.0
    ) -> None:
        self.fn = fn
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future, float]] | None = None  # item, result, arrival
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cnnkit-batch")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Results for ``items`` (each may share a batch with other requests' items)."""
        if self._queue is None:
            await self.start()
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        now = loop.time()
        for item, fut in zip(items, futures, strict=True):
            self._queue.put_nowait((item, fut, now))
        return list(await asyncio.gather(*futures))

    async def _worker(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            # The wait counts from when the first image arrived: images that queued while the network
            # ran the previous batch have waited already, and go at once with whatever else is there.
            deadline = first[2] + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())  # already waiting: take without a timer
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
            live = [
                (x, f) for x, f, _ in batch if not f.cancelled()
            ]  # a timed-out request's images are dropped
            if not live:
                continue
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._pool, self.fn, [x for x, _ in live])
            except Exception as e:  # a bug or an out-of-memory: fail these requests, keep serving
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.stats.batches += 1
            self.stats.images += len(live)
            self.stats.busy_s += time.perf_counter() - t0
            for (_, f), r in zip(live, results, strict=True):
                if not f.done():
                    f.set_result(r)
