"""Client-side rate limits, on a virtual clock: what is granted at once, what must wait,
and who goes first when live and backfill work both wait."""

from __future__ import annotations

import asyncio

import pytest

from v10r.providers.ratelimit import RateLimiter, estimate_tokens

pytestmark = pytest.mark.unit


class VirtualTime:
    """A clock that moves only when someone sleeps; records every requested sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def limiter(time: VirtualTime, **limits) -> RateLimiter:
    return RateLimiter(clock=time.clock, sleep=time.sleep, **limits)


async def test_a_minutes_worth_of_requests_goes_at_once_then_one_waits():
    time = VirtualTime()
    rl = limiter(time, requests_per_minute=3)
    for _ in range(3):
        await rl.acquire()
    assert time.sleeps == []
    await rl.acquire()
    assert time.sleeps == [pytest.approx(20.0)]  # one request refills every 60/3 s


async def test_tokens_are_limited_separately_from_requests():
    time = VirtualTime()
    rl = limiter(time, requests_per_minute=1000, tokens_per_minute=100)
    await rl.acquire(60)
    assert time.sleeps == []
    await rl.acquire(60)
    assert len(time.sleeps) == 1  # 40 left, 20 more needed


async def test_a_request_larger_than_the_budget_waits_for_a_full_bucket_not_forever():
    time = VirtualTime()
    rl = limiter(time, tokens_per_minute=100)
    await rl.acquire(500)
    await rl.acquire(500)
    assert time.sleeps == [pytest.approx(60.0)]


async def test_live_work_goes_before_backfill_that_waited_longer():
    time = VirtualTime()
    rl = limiter(time, requests_per_minute=2)
    await rl.acquire(priority="backfill")
    await rl.acquire(priority="backfill")
    rl.granted.clear()
    backfill = asyncio.create_task(rl.acquire(priority="backfill"))
    live = asyncio.create_task(rl.acquire(priority="live"))
    await asyncio.wait_for(asyncio.gather(backfill, live), timeout=5)
    assert rl.granted == ["live", "backfill"]


async def test_a_cancelled_waiter_leaves_the_queue():
    time = VirtualTime()
    gate = asyncio.Event()

    async def blocked_sleep(seconds: float) -> None:
        await gate.wait()

    rl = RateLimiter(requests_per_minute=1, clock=time.clock, sleep=blocked_sleep)
    await rl.acquire()
    waiter = asyncio.create_task(rl.acquire())
    await asyncio.sleep(0)
    assert rl.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert rl.waiting == 0


async def test_no_limits_never_waits():
    time = VirtualTime()
    rl = limiter(time)
    for _ in range(1000):
        await rl.acquire(10_000)
    assert time.sleeps == []


@pytest.mark.parametrize(("chars", "tokens"), [(0, 1), (1, 1), (4, 1), (5, 2), (4000, 1000)])
def test_tokens_are_estimated_from_characters(chars, tokens):
    assert estimate_tokens(chars) == tokens
