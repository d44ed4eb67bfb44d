"""Client-side rate limits, so v10r stays under a provider's quota instead of living on 429s.

A token bucket per dimension (requests, tokens) refilled continuously at the per-minute
rate, with room for one minute's worth. Waiters are served by priority: live work
(rows just changed) before backfill, first come first served within a priority.
Optionally a Redis fixed-window counter shares the quota between processes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

Priority = Literal["live", "backfill"]
_RANK: dict[str, int] = {"live": 0, "backfill": 1}


def estimate_tokens(text_chars: int) -> int:
    """Tokens ≈ characters / 4: the usual estimate for English with BPE tokenizers."""
    return max(1, -(-text_chars // 4))


@dataclass
class _Bucket:
    per_minute: float
    level: float = field(init=False)
    at: float = 0.0

    def __post_init__(self) -> None:
        self.level = self.per_minute

    def refill(self, now: float) -> None:
        self.level = min(self.per_minute, self.level + (now - self.at) * self.per_minute / 60)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 when it already is)."""
        missing = min(amount, self.per_minute) - self.level
        return max(0.0, missing * 60 / self.per_minute)


class RateLimiter:
    """Requests/minute and tokens/minute limits with live-before-backfill waiting."""

    def __init__(
        self,
        *,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        shared: RedisWindow | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        now = clock()
        self._buckets: dict[str, _Bucket] = {}
        if requests_per_minute:
            self._buckets["requests"] = _Bucket(requests_per_minute, at=now)
        if tokens_per_minute:
            self._buckets["tokens"] = _Bucket(tokens_per_minute, at=now)
        self._shared = shared
        self._clock = clock
        self._sleep = sleep
        self._queue: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self.granted: list[Priority] = []  # order of grants, for observability and tests

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def acquire(self, tokens: int = 1, *, priority: Priority = "live") -> None:
        """Wait until one request carrying `tokens` tokens may be sent."""
        ticket = (_RANK[priority], next(self._seq))
        heapq.heappush(self._queue, ticket)
        try:
            while True:
                if self._queue[0] != ticket:
                    await self._wait_for_change()
                    continue
                delay = self._take({"requests": 1, "tokens": tokens})
                if delay <= 0:
                    break
                await self._sleep(delay)
        finally:
            self._queue.remove(ticket)
            heapq.heapify(self._queue)
            self._notify()
        self.granted.append(priority)
        if self._shared is not None:
            await self._shared.acquire(tokens, sleep=self._sleep)

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()

    def _take(self, amounts: dict[str, int]) -> float:
        now = self._clock()
        delay = 0.0
        for name, bucket in self._buckets.items():
            bucket.refill(now)
            delay = max(delay, bucket.wait_for(amounts[name]))
        if delay <= 0:
            for name, bucket in self._buckets.items():
                bucket.level -= min(amounts[name], bucket.per_minute)
        return delay

    async def _wait_for_change(self) -> None:
        event = self._changed
        await event.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class RedisWindow:
    """A per-minute fixed window in Redis (INCR + EXPIRE), shared by every process."""

    def __init__(self, client, key: str, *, requests_per_minute: int | None,
                 tokens_per_minute: int | None, clock: Callable[[], float] = time.time) -> None:
        self._client = client  # a redis.asyncio.Redis
        self._key = key
        self._limits = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self._clock = clock

    async def try_acquire(self, tokens: int) -> float:
        """Count one request in this minute's window; 0 when within limits, else the
        seconds until the next window (and the count is given back)."""
        now = self._clock()
        window = int(now // 60)
        amounts = {"requests": 1, "tokens": tokens}
        taken: list[tuple[str, int]] = []
        for name, limit in self._limits.items():
            if not limit:
                continue
            key = f"{self._key}:{name}:{window}"
            count = await self._client.incrby(key, amounts[name])
            await self._client.expire(key, 120)
            taken.append((key, amounts[name]))
            if count > limit and count != amounts[name]:  # an oversize request may go alone
                for done, amount in taken:
                    await self._client.decrby(done, amount)
                return (window + 1) * 60 - now
        return 0.0

    async def acquire(self, tokens: int, *, sleep: Callable[[float], Awaitable[None]]) -> None:
        while (delay := await self.try_acquire(tokens)) > 0:
            await sleep(delay)

    async def aclose(self) -> None:
        await self._client.aclose()
