"""Every OpenAI-compatible embeddings endpoint: OpenAI itself, Infinity, vLLM, TEI, Ollama...

`POST {base_url}/embeddings` with `{"model", "input": [...]}`. One pooled aiohttp session
per provider (httpx spent ~1 ms of CPU per request, aiohttp ~0.3: at 64 texts a request,
that was a third of a worker's time). Transient failures (429, 5xx, timeouts, connection
errors) are retried with backoff, honouring `Retry-After`; anything the user must fix
fails at once with a hint. Vectors are asked for as base64 (decoding JSON floats
dominated a peer tool's worker), falling back to float lists for servers that lack it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import time
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import orjson
import yarl

from v10r import __version__
from v10r.errors import ProviderAuthError, ProviderError, ProviderUnavailable
from v10r.providers.batching import assemble, clip, in_flight, plan_batches
from v10r.providers.ratelimit import Priority, RateLimiter, estimate_tokens
from v10r.providers.response import InvalidResponse, decode_embeddings, max_response_bytes
from v10r.providers.retry import Backoff, parse_retry_after
from v10r.redact import mask_text, mask_url, printable

log = logging.getLogger("v10r.providers")

DEFAULT_REQUEST_CHARS = 400_000  # ≈100k tokens, under OpenAI's 300k tokens per request
DEFAULT_BACKOFF = Backoff()
OFF_LOOP_BYTES = 512_000
ERROR_BODY_BYTES = 65_536  # of an error response, only the message is wanted
CONNECT_TIMEOUT_S = 5.0  # a server that does not accept a connection by then is down


class OpenAICompatibleProvider:
    """Embeds through an OpenAI-style HTTP API; `name` is the spec's provider kind."""

    def __init__(
        self,
        *,
        name: str,
        model: str,
        dimensions: int,
        base_url: str,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        send_dimensions: bool = False,
        max_batch_size: int = 64,
        max_concurrency: int = 1,
        max_input_chars: int = 32_000,
        max_request_chars: int = DEFAULT_REQUEST_CHARS,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        limiter: RateLimiter | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pipeline: str | None = None,
    ) -> None:
        self.name, self.model, self.dimensions = name, model, dimensions
        self.base_url = base_url.rstrip("/")
        self.max_batch_size, self.max_input_chars = max_batch_size, max_input_chars
        # Requests in flight per `embed` call; the rate limiter still paces each one.
        self.max_concurrency = max(1, max_concurrency)
        self.max_request_chars = max(max_request_chars, max_input_chars)
        self.max_retries, self.send_dimensions = max_retries, send_dimensions
        self.encoding = "base64"  # becomes "float" once a server shows it lacks base64
        self._limiter, self._backoff, self._sleep = limiter, backoff, sleep
        self._pipeline, self._timeout_s = pipeline, timeout_s
        self._secrets = tuple(v for v in (api_key, *(headers or {}).values()) if v)
        self._headers = _headers(api_key, headers)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._proxy = _Proxy.from_environment(self.base_url)

    def __repr__(self) -> str:
        return (f"OpenAICompatibleProvider(name={self.name!r}, model={self.model!r}, "
                f"dimensions={self.dimensions}, base_url={self._where()!r})")

    async def embed(self, texts: Sequence[str], *, priority: Priority = "live") -> np.ndarray:
        texts = clip(texts, self.max_input_chars)
        batches = plan_batches([len(t) for t in texts], max_batch_size=self.max_batch_size,
                               max_batch_chars=self.max_request_chars)
        results = await in_flight([functools.partial(self._embed_batch, [texts[i] for i in b],
                                                     priority) for b in batches],
                                  self.max_concurrency)
        return assemble(batches, results, self.dimensions)

    async def aclose(self) -> None:
        if self._session is not None and self._session_loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
        if self._limiter is not None:
            await self._limiter.aclose()

    async def _embed_batch(self, texts: list[str], priority: Priority) -> np.ndarray:
        tokens = estimate_tokens(sum(len(t) for t in texts))
        attempt = 0
        while True:
            if self._limiter is not None:
                await self._limiter.acquire(tokens, priority=priority)
            try:
                return await self._request(texts)
            except ProviderError as error:
                if not error.retryable or attempt >= self.max_retries:
                    raise
                delay = self._backoff.delay(attempt, error.retry_after)
                log.warning("%s; retry %d/%d in %.1fs", error.message, attempt + 1,
                            self.max_retries, delay)
                attempt += 1
                await self._sleep(delay)

    async def _request(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.send_dimensions:
            body["dimensions"] = self.dimensions
        if self.encoding == "base64":
            body["encoding_format"] = "base64"
        limit = max_response_bytes(len(texts), self.dimensions)
        try:
            async with asyncio.timeout(self._timeout_s):  # whole request, not per read
                reply = await self._post(body, limit)
        except TimeoutError:
            raise self._error("request timed out", retryable=True) from None
        except aiohttp.ClientSSLError as exc:
            raise self._error(
                f"TLS failed ({type(exc).__name__}: {_tls_reason(exc)})", retryable=True,
                hint="the server's certificate must be trusted by the system's CA store; "
                "name another CA bundle with SSL_CERT_FILE, and check base_url's host") from None
        except aiohttp.ClientError as exc:
            raise self._error(f"cannot connect ({type(exc).__name__})", retryable=True) from None
        if reply.status == 400 and self.encoding == "base64" and b"encoding_format" in reply.body:
            log.info("%s does not accept encoding_format=base64; using float", self._where())
            self.encoding = "float"
            return await self._request(texts)
        self._check_status(reply)
        if reply.truncated:
            raise self._error(f"response is larger than {limit:,} bytes (the most that "
                              f"{len(texts)} embedding(s) of {self.dimensions} dimensions "
                              "can take); not read further")
        decode = functools.partial(decode_embeddings, reply.body, count=len(texts),
                                   dimensions=self.dimensions)
        try:  # a big float-JSON body takes long enough to parse to stall the loop
            vectors, was_base64 = (await asyncio.to_thread(decode)
                                   if len(reply.body) > OFF_LOOP_BYTES else decode())
        except InvalidResponse as exc:
            raise self._error(f"invalid response: {exc}", hint=self._dims_hint(exc)) from None
        if self.encoding == "base64" and not was_base64 and texts:
            self.encoding = "float"  # the server ignores base64: stop asking
        return vectors

    def _client(self) -> aiohttp.ClientSession:
        """The pooled session, made in (and for) the running loop: a session belongs to
        the loop it was made in, and a provider may outlive one (tests, `asyncio.run`)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                # the CA store as the environment names it now (SSL_CERT_FILE/_DIR)
                connector=aiohttp.TCPConnector(limit=max(32, self.max_concurrency),
                                               ssl=ssl.create_default_context()),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=min(CONNECT_TIMEOUT_S, self._timeout_s)),
            )
            self._session_loop = loop
        return self._session

    async def _post(self, body: dict[str, Any], limit: int) -> _Reply:
        """POST, reading at most `limit` bytes of a success and `ERROR_BODY_BYTES` of an
        error: a runaway response never sits in memory whole."""
        async with self._client().post(f"{self.base_url}/embeddings", data=_json(body),
                                       allow_redirects=False, proxy=self._proxy.url,
                                       proxy_headers=self._proxy.headers) as response:
            cap = limit if response.status < 300 else ERROR_BODY_BYTES
            declared = response.content_length
            chunks, size = [], declared or 0
            if size <= cap:  # an announced runaway is not even started
                size = 0
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                    if size > cap:
                        break
                    chunks.append(chunk)
            return _Reply(response.status, response.headers, b"".join(chunks),
                          truncated=size > cap)

    def _check_status(self, reply: _Reply) -> None:
        status = reply.status
        if status < 300:
            return
        detail = _server_message(mask_text(reply.body.decode("utf-8", "replace"),
                                           self._secrets))
        retry_after = parse_retry_after(reply.headers.get("retry-after"), time.time())
        match status:
            case 401 | 403:
                raise self._error(
                    f"authentication failed (HTTP {status}){detail}", auth=True,
                    hint="check embedding.api_key (and its environment variable) and headers")
            case 429:
                raise self._error(f"rate limited (HTTP 429){detail}", retryable=True,
                                  retry_after=retry_after)
            case _ if status >= 500 or status == 408:
                raise self._error(f"server error (HTTP {status}){detail}", retryable=True,
                                  retry_after=retry_after)
            case _:
                raise self._error(f"request refused (HTTP {status}){detail}",
                                  hint="check embedding.model, dimensions and max_input_chars")

    def _error(self, message: str, *, retryable: bool = False, retry_after: float | None = None,
               hint: str | None = None, auth: bool = False) -> ProviderError:
        """The error for the runtime: `ProviderAuthError` stops the batch,
        `ProviderUnavailable` is retried (never bisected), `ProviderError` is the input's."""
        text = printable(mask_text(f"{message} for provider {self.name} ({self._where()})",
                                   self._secrets))
        context = {"hint": mask_text(hint, self._secrets) if hint else None,
                   "pipeline": self._pipeline}
        if auth:
            return ProviderAuthError(text, **context)
        if retryable:
            context["hint"] = context["hint"] or ("the provider is unavailable; v10r retries, "
                                                  "and the row stays stale until it succeeds")
            return ProviderUnavailable(text, retry_after=retry_after, **context)
        return ProviderError(text, **context)

    def _dims_hint(self, exc: InvalidResponse) -> str | None:
        if "dimensions" in str(exc):
            return "set embedding.dimensions to what the model returns (or send_dimensions: true)"
        return None

    def _where(self) -> str:
        return mask_text(mask_url(self.base_url), self._secrets)


def _headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Ours, then the spec's (which replace ours whatever their case), then the key's."""
    by_name = {"content-type": ("Content-Type", "application/json"),
               "user-agent": ("User-Agent", f"v10r/{__version__}")}
    by_name |= {name.lower(): (name, value) for name, value in (extra or {}).items()}
    if api_key:
        by_name["authorization"] = ("Authorization", f"Bearer {api_key}")
    return dict(by_name.values())


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive, as the server sent them
    body: bytes
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class _Proxy:
    """The proxy the environment names for the provider (HTTP(S)_PROXY, NO_PROXY), read
    once: aiohttp's `trust_env` reads it, and ~/.netrc, in a thread on every request."""

    url: yarl.URL | None = None
    headers: dict[str, str] | None = None

    @classmethod
    def from_environment(cls, base_url: str) -> _Proxy:
        target = yarl.URL(base_url)
        if target.host and urllib.request.proxy_bypass(target.host):
            return cls()
        named = urllib.request.getproxies().get(target.scheme)
        if not named:
            return cls()
        try:
            proxy = yarl.URL(named if "://" in named else f"http://{named}")
            auth = aiohttp.BasicAuth.from_url(proxy)
        except ValueError:
            raise ProviderError(f"the {target.scheme} proxy named by the environment is not a "
                                f"URL: {mask_url(named)!r}",
                                hint=f"fix {target.scheme.upper()}_PROXY (or unset it)") from None
        return cls(proxy.with_user(None),
                   {"Proxy-Authorization": auth.encode()} if auth is not None else None)


def _tls_reason(exc: aiohttp.ClientSSLError) -> str:
    """OpenSSL's reason (`certificate verify failed: self-signed certificate`), short."""
    cause = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
    return str(getattr(cause, "verify_message", "") or getattr(cause, "reason", "") or cause)[:200]


def _json(body: dict[str, Any]) -> bytes:
    """The request body. orjson refuses what is not valid UTF-8 (a lone surrogate, which
    no PostgreSQL text holds); `json` escapes it, and the server judges that text alone."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body).encode()


def _server_message(body: str) -> str:
    """The error text a server put in its body (OpenAI: {"error": {"message"}}), shortened
    (after masking: a cut secret would no longer be recognised); control characters are
    escaped by `printable` where the error is built."""
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.strip()
        return f": {text[:300]}" if text else ""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    message = error.get("message") if isinstance(error, dict) else error or payload.get("detail")
    return f": {str(message)[:300]}" if message else ""
