"""A rate limit shared by several processes through Redis counts every process's requests."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from tests.fixtures.providers import openai_server  # noqa: F401 - fixture
from v10r.providers.factory import create_provider
from v10r.providers.ratelimit import RedisWindow
from v10r.spec.model import Embedding

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
    frozen = lambda: 600.5  # one fixed-window minute
    a = RedisWindow(client, key, requests_per_minute=3, tokens_per_minute=None, clock=frozen)
    b = RedisWindow(client, key, requests_per_minute=3, tokens_per_minute=None, clock=frozen)
    granted = [await w.try_acquire(1) for w in (a, b, a)]
    assert granted == [0.0, 0.0, 0.0]
    assert await b.try_acquire(1) == pytest.approx(59.5)  # until the next window


async def test_a_refused_request_gives_its_count_back(redis_client):
    client, key = redis_client
    frozen = lambda: 60.0
    window = RedisWindow(client, key, requests_per_minute=10, tokens_per_minute=100, clock=frozen)
    assert await window.try_acquire(80) == 0.0
    assert await window.try_acquire(30) > 0
    assert await window.try_acquire(20) == 0.0  # the refused 30 tokens were returned
    assert int(await client.get(f"{key}:requests:1")) == 2


async def test_a_provider_with_a_shared_limit_counts_its_requests_in_redis(openai_server):
    model = f"model-{uuid.uuid4().hex[:8]}"
    spec = Embedding(provider="custom", base_url=openai_server.url, model=model, dimensions=384,
                     requests_per_minute=1000, batch_size=2)
    provider = create_provider(spec, pipeline="p", rate_limit_redis_url=REDIS_URL)
    client = redis.from_url(REDIS_URL)
    keys: list[bytes] = []
    try:
        await provider.embed(["a", "b", "c"])
        keys = [key async for key in client.scan_iter(f"v10r:ratelimit:custom:{model}:*")]
        assert [int(await client.get(key)) for key in keys] == [2]  # two requests
    finally:
        await provider.aclose()
        for key in keys:
            await client.delete(key)
        await client.aclose()
