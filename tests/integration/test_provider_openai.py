"""The OpenAI-compatible provider against a real HTTP server scripted to misbehave."""

# ruff: noqa: F811 - fixtures imported from tests.fixtures.providers
from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.fixtures.providers import openai_server  # noqa: F401 - fixtures
from tests.services.openai_server import OpenAIServer, Reply
from v10r.errors import ProviderAuthError, ProviderError
from v10r.providers.deterministic import deterministic_vector
from v10r.providers.openai import OpenAICompatibleProvider

pytestmark = pytest.mark.integration

KEY = "sk-test-0123456789abcdef"


class Sleeps:
    """Records the waits the provider asks for instead of spending them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make(openai_server: OpenAIServer, sleeps: Sleeps):
    made: list[OpenAICompatibleProvider] = []

    def build(**overrides) -> OpenAICompatibleProvider:
        options = {"name": "custom", "model": "test-model", "dimensions": 384,
                   "base_url": openai_server.url, "api_key": KEY, "max_retries": 3,
                   "timeout_s": 5.0, "sleep": sleeps}
        provider = OpenAICompatibleProvider(**{**options, **overrides})
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


def expected(texts: list[str], dims: int = 384) -> np.ndarray:
    return np.stack([deterministic_vector(t, dims) for t in texts])


async def test_embeds_texts_asking_for_base64_with_the_key(make, openai_server):
    texts = ["first row", "second row", "ünïcödé ✓"]
    vectors = await make().embed(texts)
    np.testing.assert_array_equal(vectors, expected(texts))
    [request] = openai_server.requests
    assert request.json == {"model": "test-model", "input": texts, "encoding_format": "base64"}
    assert request.headers["Authorization"] == f"Bearer {KEY}"


async def test_sends_dimensions_only_when_the_spec_says_so(make, openai_server):
    await make(dimensions=64, send_dimensions=True).embed(["a"])
    assert openai_server.requests[0].json["dimensions"] == 64


async def test_many_texts_are_split_into_requests_and_returned_in_order(make, openai_server):
    texts = [f"text number {i}" for i in range(10)]
    vectors = await make(max_batch_size=3).embed(texts)
    assert [len(r.texts) for r in openai_server.requests] == [3, 3, 3, 1]
    np.testing.assert_array_equal(vectors, expected(texts))


async def test_no_texts_no_request(make, openai_server):
    assert (await make().embed([])).shape == (0, 384)
    assert openai_server.requests == []


async def test_long_texts_are_clipped_to_max_input_chars(make, openai_server):
    await make(max_input_chars=10).embed(["x" * 50])
    assert openai_server.requests[0].texts == ["x" * 10]


async def test_rate_limited_then_ok_waits_as_the_server_asks(make, openai_server, sleeps):
    openai_server.script(Reply.rate_limited(retry_after="2"))
    vectors = await make().embed(["a"])
    np.testing.assert_array_equal(vectors, expected(["a"]))
    assert len(openai_server.requests) == 2
    assert sleeps.delays == [2.0]


async def test_server_errors_are_retried_until_it_recovers(make, openai_server, sleeps):
    openai_server.script(Reply.error(500), Reply.error(502), Reply.error(503))
    vectors = await make(max_retries=3).embed(["a", "b"])
    np.testing.assert_array_equal(vectors, expected(["a", "b"]))
    assert len(openai_server.requests) == 4
    assert len(sleeps.delays) == 3


async def test_a_server_that_keeps_failing_gives_a_retryable_error(make, openai_server):
    openai_server.always = Reply.error(500, "model crashed")
    with pytest.raises(ProviderError) as caught:
        await make(max_retries=2).embed(["a"])
    assert caught.value.retryable
    assert "server error (HTTP 500): model crashed" in str(caught.value)
    assert len(openai_server.requests) == 3  # first try + 2 retries


async def test_a_hanging_server_times_out_and_is_retried(make, openai_server):
    openai_server.always = Reply.hang(5.0)
    with pytest.raises(ProviderError, match="timed out") as caught:
        await make(timeout_s=0.2, max_retries=1).embed(["a"])
    assert caught.value.retryable
    assert len(openai_server.requests) == 2


async def test_an_unreachable_server_is_a_retryable_connection_error(make, sleeps):
    provider = make(base_url="http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(ProviderError, match="cannot connect") as caught:
        await provider.embed(["a"])
    assert caught.value.retryable and len(sleeps.delays) == 1


async def test_bad_key_fails_at_once_and_the_key_is_never_shown(make, openai_server, caplog):
    caplog.set_level(logging.DEBUG)
    openai_server.always = Reply.unauthorized(f"Incorrect API key provided: {KEY}")
    provider = make(headers={"X-Org": "org-secret-value"})
    with pytest.raises(ProviderError) as caught:
        await provider.embed(["a"])
    error = caught.value
    assert str(error).startswith("authentication failed (HTTP 401): Incorrect API key provided")
    assert "for provider custom (http://127.0.0.1:" in str(error)
    assert isinstance(error, ProviderAuthError)
    assert not error.retryable and len(openai_server.requests) == 1
    shown = [str(error), repr(error), error.hint or "", repr(provider), caplog.text]
    assert not any(KEY in s or "org-secret-value" in s for s in shown)


async def test_a_long_error_message_never_shows_part_of_the_key(make, openai_server):
    openai_server.always = Reply.error(400, "x" * 280 + f" {KEY} was refused")
    with pytest.raises(ProviderError) as caught:
        await make().embed(["a"])
    assert KEY[:12] not in str(caught.value)  # cut after masking, never mid-secret


async def test_a_refused_request_shows_the_servers_message_masked(make, openai_server):
    openai_server.always = Reply.error(400, f"input too long for key {KEY}")
    with pytest.raises(ProviderError) as caught:
        await make().embed(["a"])
    assert "request refused (HTTP 400): input too long for key ****" in str(caught.value)
    assert not caught.value.retryable and len(openai_server.requests) == 1


@pytest.mark.parametrize(("reply", "message"), [
    (Reply(dimensions=10), "embedding 0 has 10 dimensions, expected 384"),
    (Reply(extra_items=-1), "asked for 2 embeddings, got 1"),
    (Reply(extra_items=1), "asked for 2 embeddings, got 3"),
    (Reply.malformed(), "response is not valid JSON"),
])
async def test_wrong_answers_are_clear_errors(make, openai_server, reply, message):
    openai_server.always = reply
    with pytest.raises(ProviderError, match=message) as caught:
        await make().embed(["a", "b"])
    assert "invalid response" in str(caught.value) and "provider custom" in str(caught.value)


async def test_vectors_listed_out_of_order_are_placed_by_their_index(make, openai_server):
    openai_server.always = Reply(reverse=True)
    texts = ["first", "second", "third"]
    np.testing.assert_allclose(await make().embed(texts), expected(texts), atol=1e-6)


async def test_a_server_rejecting_base64_gets_floats_from_then_on(make, openai_server):
    openai_server.base64_support = "reject"
    provider = make()
    np.testing.assert_allclose(await provider.embed(["a"]), expected(["a"]))
    await provider.embed(["b"])
    formats = [r.json.get("encoding_format") for r in openai_server.requests]
    assert formats == ["base64", None, None]


async def test_a_server_ignoring_base64_is_not_asked_again(make, openai_server):
    openai_server.base64_support = "ignore"
    provider = make()
    np.testing.assert_allclose(await provider.embed(["a"]), expected(["a"]))
    await provider.embed(["b"])
    assert [r.json.get("encoding_format") for r in openai_server.requests] == ["base64", None]


async def test_a_large_float_response_decodes_the_same(make, openai_server):
    openai_server.base64_support = "ignore"
    texts = [f"row {i}" for i in range(200)]  # ≈1.5 MB of float JSON: parsed off the loop
    vectors = await make(max_batch_size=200).embed(texts)
    np.testing.assert_allclose(vectors, expected(texts), rtol=1e-6)


async def test_the_request_names_v10r_and_the_specs_headers_replace_its_own(make,
                                                                            openai_server):
    await make(headers={"user-agent": "gateway-client/2", "X-Tenant": "t1"}).embed(["a"])
    sent = {name.lower(): value for name, value in openai_server.requests[-1].headers.items()}
    assert sent["user-agent"] == "gateway-client/2" and sent["x-tenant"] == "t1"
    assert sent["authorization"] == f"Bearer {KEY}"
    await make().embed(["b"])
    assert openai_server.requests[-1].headers["User-Agent"].startswith("v10r/")
