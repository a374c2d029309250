"""The AIMD in-flight limit of the openai engine, on its own (pure asyncio, milliseconds)."""

from __future__ import annotations

import asyncio

import pytest

from synthloop.engines.adaptive_limit import AdaptiveLimit


def test_limit_bounds_in_flight_and_serves_in_order():
    async def main():
        limit = AdaptiveLimit(3)
        order, peak, running = [], 0, 0

        async def job(i):
            nonlocal peak, running
            await limit.acquire()
            running += 1
            peak = max(peak, running)
            order.append(i)
            await asyncio.sleep(0.01)
            running -= 1
            limit.release()

        await asyncio.gather(*(job(i) for i in range(12)))
        return order, peak, limit

    order, peak, limit = asyncio.run(main())
    assert peak == 3 and limit.max_in_flight == 3
    assert order == list(range(12))  # first come, first served
    assert limit.in_flight == 0


def test_overload_halves_once_per_epoch_and_success_recovers():
    async def main():
        limit = AdaptiveLimit(32)
        epochs = [await limit.acquire() for _ in range(8)]
        for e in epochs:  # a burst of 429s for requests started before the first decrease counts once
            limit.overloaded(e, None)
        after_burst = limit.current
        for _ in range(8):
            limit.release()
        newer = await limit.acquire()
        limit.overloaded(newer, None)  # a request started after the decrease may decrease again
        limit.release()
        low = limit.current
        steps = 0
        while limit.current < 32:
            limit.succeeded()
            steps += 1
        return after_burst, low, steps, limit

    after_burst, low, steps, limit = asyncio.run(main())
    assert after_burst == 16 and low == 8 and limit.decreases == 2
    assert limit.stats()["lowest_limit"] == 8
    # additive increase: about `limit` successes per +1, i.e. one step per round trip
    assert sum(range(8, 32)) * 0.9 <= steps <= sum(range(8, 32)) * 1.1
    assert [v for _, v in limit.trace][:2] == [16, 8]


def test_retry_after_pauses_new_requests():
    async def main():
        limit = AdaptiveLimit(4)
        loop = asyncio.get_running_loop()
        epoch = await limit.acquire()
        limit.overloaded(epoch, retry_after=0.2)
        limit.release()
        start = loop.time()
        await limit.acquire()
        return loop.time() - start

    waited = asyncio.run(main())
    assert 0.15 <= waited < 1.0


def test_cancelled_waiter_gives_its_slot_back():
    async def main():
        limit = AdaptiveLimit(1)
        await limit.acquire()
        waiter = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limit.release()
        await asyncio.wait_for(limit.acquire(), 1.0)
        return limit.in_flight

    assert asyncio.run(main()) == 1


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        AdaptiveLimit(2, minimum=3)
