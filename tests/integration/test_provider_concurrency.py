"""Requests in flight per `embed` call: bounded by `max_concurrency`, answers in input
order, paced by the rate limiter, and the same error classes as one at a time."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.fixtures.providers import openai_server  # noqa: F401 - fixtures
from tests.services.openai_server import OpenAIServer, Reply
from v10r.errors import ProviderAuthError, ProviderError
from v10r.providers.deterministic import deterministic_vector
from v10r.providers.factory import create_provider
from v10r.providers.openai import OpenAICompatibleProvider
from v10r.providers.ratelimit import RateLimiter
from v10r.spec.model import Embedding

pytestmark = pytest.mark.integration


def provider(server: OpenAIServer, **options: object) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(**{"name": "custom", "model": "test-model",
                                       "dimensions": 384, "base_url": server.url,
                                       "max_retries": 0, "timeout_s": 30.0,
                                       "max_batch_size": 2, **options})


async def until(check, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_at_most_max_concurrency_requests_are_in_flight(openai_server):
    openai_server.always = Reply(delay_s=3.0)
    embedder = provider(openai_server, max_concurrency=3)
    try:
        job = asyncio.ensure_future(embedder.embed([f"t{i}" for i in range(10)]))
        await until(lambda: len(openai_server.requests) >= 3, "three requests")
        await asyncio.sleep(0.3)  # a fourth one would have arrived by now
        assert len(openai_server.requests) == 3 and not job.done()
        openai_server.always = None
        vectors = await job
    finally:
        await embedder.aclose()
    texts = [f"t{i}" for i in range(10)]
    np.testing.assert_array_equal(vectors, np.stack([deterministic_vector(t, 384)
                                                     for t in texts]))
    assert sorted(t for r in openai_server.requests for t in r.texts) == sorted(texts)


async def test_answers_arriving_out_of_order_land_in_input_order(openai_server):
    openai_server.script(Reply(delay_s=0.5), Reply(), Reply(delay_s=0.2), Reply())
    embedder = provider(openai_server, max_concurrency=4)
    texts = [f"row {i}" for i in range(8)]
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    np.testing.assert_array_equal(vectors, np.stack([deterministic_vector(t, 384)
                                                     for t in texts]))


async def test_a_refusal_in_one_request_fails_the_call_with_its_own_class(openai_server):
    openai_server.refuse["poison"] = "input rejected"
    embedder = provider(openai_server, max_concurrency=4)
    try:
        with pytest.raises(ProviderError) as caught:
            await embedder.embed(["a", "b", "c", "poison", "d", "e"])
    finally:
        await embedder.aclose()
    assert not caught.value.retryable and not isinstance(caught.value, ProviderAuthError)


async def test_a_bad_key_is_an_auth_error_with_requests_in_flight(openai_server):
    openai_server.always = Reply.unauthorized()
    embedder = provider(openai_server, max_concurrency=4)
    try:
        with pytest.raises(ProviderAuthError):
            await embedder.embed([f"t{i}" for i in range(8)])
    finally:
        await embedder.aclose()


async def test_the_rate_limit_still_paces_requests_in_flight(openai_server):
    limiter = RateLimiter(requests_per_minute=2)
    embedder = provider(openai_server, max_concurrency=4, limiter=limiter)
    try:
        job = asyncio.ensure_future(embedder.embed([f"t{i}" for i in range(8)]))
        await until(lambda: len(openai_server.requests) >= 2, "the minute's two requests")
        await asyncio.sleep(0.5)
        assert len(openai_server.requests) == 2 and not job.done()
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    finally:
        await embedder.aclose()


async def test_the_spec_bounds_and_passes_max_concurrency() -> None:
    spec = {"provider": "custom", "base_url": "http://127.0.0.1:9/v1", "model": "m",
            "dimensions": 8}
    assert Embedding.model_validate(spec).max_concurrency == 4
    built = create_provider(Embedding.model_validate({**spec, "max_concurrency": 7}))
    await built.aclose()
    assert isinstance(built, OpenAICompatibleProvider) and built.max_concurrency == 7
    for bad in (0, -1, 65, "many", 1.5):
        with pytest.raises(ValueError, match="max_concurrency"):
            Embedding.model_validate({**spec, "max_concurrency": bad})
