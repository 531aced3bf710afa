"""The micro-batcher on its own: order, batch bounds, waiting, failures that do not stop it."""

from __future__ import annotations

import asyncio

import pytest

from cnnkit.deploy.batching import MicroBatcher


def run(coro):
    return asyncio.run(coro)


def test_results_come_back_in_order_in_bounded_batches():
    sizes: list[int] = []

    def fn(items):
        sizes.append(len(items))
        return [x * 10 for x in items]

    async def main():
        b = MicroBatcher(fn, max_batch=4, max_wait_ms=50)
        await b.start()
        out = await asyncio.gather(*[b.submit([i, i + 100]) for i in range(6)])
        await b.stop()
        return out, b.stats

    out, stats = run(main())
    assert out == [[i * 10, (i + 100) * 10] for i in range(6)]
    assert max(sizes) <= 4 and sum(sizes) == 12 and len(sizes) == 3  # 12 items, full batches of 4
    assert stats.images == 12 and stats.batches == 3 and stats.mean_batch == 4


def test_max_batch_1_runs_every_item_alone_and_a_lone_item_waits_at_most_max_wait():
    sizes: list[int] = []

    def fn(items):
        sizes.append(len(items))
        return items

    async def main():
        b = MicroBatcher(fn, max_batch=1)
        await b.start()
        await asyncio.gather(*[b.submit([i]) for i in range(5)])
        await b.stop()
        lone = MicroBatcher(fn, max_batch=64, max_wait_ms=20)
        await lone.start()
        t0 = asyncio.get_running_loop().time()
        await lone.submit(["x"])
        waited = asyncio.get_running_loop().time() - t0
        await lone.stop()
        return waited

    waited = run(main())
    assert sizes[:5] == [1] * 5
    assert waited < 1.0  # the deadline, not max_batch, releases a lone image


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    calls = {"n": 0}

    def fn(items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return items

    async def main():
        b = MicroBatcher(fn, max_batch=8, max_wait_ms=1)
        await b.start()
        with pytest.raises(RuntimeError, match="boom"):
            await b.submit([1])
        ok = await b.submit([2])
        await b.stop()
        return ok

    assert run(main()) == [2]
