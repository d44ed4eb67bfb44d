"""A rate limit shared by several processes through Redis counts every process's requests."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from v10r.providers.ratelimit import RedisWindow

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_client():
    client = redis.from_url(REDIS_URL)
    key = f"v10r:test:ratelimit:{uuid.uuid4().hex}"
    try:
        yield client, key
    finally:
        async for name in client.scan_iter(f"{key}:*"):
            await client.delete(name)
        await client.aclose()


async def test_two_processes_share_one_requests_per_minute_budget(redis_client):
    client, key = redis_client
    frozen = lambda: 600.5  # noqa: E731 - one fixed-window minute
    a = RedisWindow(client, key, requests_per_minute=3, tokens_per_minute=None, clock=frozen)
    b = RedisWindow(client, key, requests_per_minute=3, tokens_per_minute=None, clock=frozen)
    granted = [await w.try_acquire(1) for w in (a, b, a)]
    assert granted == [0.0, 0.0, 0.0]
    assert await b.try_acquire(1) == pytest.approx(59.5)  # until the next window


async def test_a_refused_request_gives_its_count_back(redis_client):
    client, key = redis_client
    frozen = lambda: 60.0  # noqa: E731
    window = RedisWindow(client, key, requests_per_minute=10, tokens_per_minute=100, clock=frozen)
    assert await window.try_acquire(80) == 0.0
    assert await window.try_acquire(30) > 0
    assert await window.try_acquire(20) == 0.0  # the refused 30 tokens were returned
    assert int(await client.get(f"{key}:requests:1")) == 2
