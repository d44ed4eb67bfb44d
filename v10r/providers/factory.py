"""From a spec's `embedding:` block to a live provider.

`${ENV}` references (API key, header values) are expanded here, at the last moment, so
specs, plans and logs only ever show the reference.
"""

from __future__ import annotations

import re

from v10r.errors import ProviderError
from v10r.providers.base import Provider
from v10r.providers.local import DIMENSIONS, MODEL, LocalProvider
from v10r.providers.openai import OpenAICompatibleProvider
from v10r.providers.ratelimit import RateLimiter, RedisWindow
from v10r.spec.env import expand
from v10r.spec.model import HEADER_VALUE_PATTERN, Embedding

_HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)


def create_provider(embedding: Embedding, *, pipeline: str | None = None,
                    rate_limit_redis_url: str | None = None) -> Provider:
    """The provider a pipeline's spec asks for; raises EnvError/ProviderError with context.

    With `rate_limit_redis_url`, the client-side rate limits are also counted in Redis,
    so several worker processes share one quota.
    """
    match embedding.provider:
        case "local":
            return _local(embedding, pipeline)
        case "openai" | "infinity" | "custom":
            return _http(embedding, pipeline, rate_limit_redis_url)
        case other:
            raise ProviderError(f"unknown provider kind {other!r}", pipeline=pipeline,
                                hint="use one of: local, openai, infinity, custom")


def _local(embedding: Embedding, pipeline: str | None) -> LocalProvider:
    if embedding.model != MODEL or embedding.dimensions != DIMENSIONS:
        raise ProviderError(
            f"the local provider runs {MODEL} ({DIMENSIONS} dimensions), not "
            f"{embedding.model} ({embedding.dimensions})",
            pipeline=pipeline, obj="embedding",
            hint=f"remove model/dimensions or set model: {MODEL}, dimensions: {DIMENSIONS}; "
            "other models need an HTTP provider (infinity, custom)")
    return LocalProvider(max_batch_size=embedding.batch_size,
                         max_input_chars=embedding.max_input_chars)


def _http(embedding: Embedding, pipeline: str | None,
          redis_url: str | None) -> OpenAICompatibleProvider:
    what = f"embedding of pipeline {pipeline}" if pipeline else "embedding"
    api_key = (_header_value(embedding.api_key, f"{what}.api_key", pipeline)
               if embedding.api_key else None)
    headers = {name: _header_value(value, f"{what}.headers.{name}", pipeline)
               for name, value in embedding.headers.items()}
    assert embedding.base_url and embedding.model and embedding.dimensions  # spec defaults
    max_request_chars = None
    if embedding.tokens_per_minute:  # one request must fit the minute's token budget
        max_request_chars = max(embedding.max_input_chars, embedding.tokens_per_minute * 4)
    return OpenAICompatibleProvider(
        name=embedding.provider, model=embedding.model, dimensions=embedding.dimensions,
        base_url=expand(embedding.base_url, what=f"{what}.base_url", pipeline=pipeline),
        api_key=api_key, headers=headers, send_dimensions=embedding.send_dimensions,
        max_batch_size=embedding.batch_size, max_input_chars=embedding.max_input_chars,
        max_concurrency=embedding.max_concurrency, timeout_s=embedding.timeout_s, max_retries=embedding.max_retries,
        limiter=_limiter(embedding, pipeline, redis_url), pipeline=pipeline,
        **({"max_request_chars": max_request_chars} if max_request_chars else {}),
    )


def _header_value(value: str, what: str, pipeline: str | None) -> str:
    """`value` with its `${ENV}` expanded, fit to travel in an HTTP header: the spec's
    own text is checked by `validate`, the variable's value only here."""
    expanded = expand(value, what=what, pipeline=pipeline)
    if not _HEADER_VALUE.fullmatch(expanded):
        raise ProviderError(
            f"`{what}` holds a line break or another control character (or is longer than "
            "8,192 characters) once its environment variables are expanded",
            pipeline=pipeline,
            hint="fix the variable's value; a value read from a file often ends in a newline")
    return expanded


def _limiter(embedding: Embedding, pipeline: str | None, redis_url: str | None) -> RateLimiter | None:
    rpm, tpm = embedding.requests_per_minute, embedding.tokens_per_minute
    if not (rpm or tpm):
        return None
    shared = None
    if redis_url:
        from v10r.redis_client import client_from_url

        key = f"v10r:ratelimit:{embedding.provider}:{embedding.model}"
        shared = RedisWindow(client_from_url(redis_url), key, requests_per_minute=rpm,
                             tokens_per_minute=tpm)
    return RateLimiter(requests_per_minute=rpm, tokens_per_minute=tpm, shared=shared)
