"""A small OpenAI-compatible embeddings server for tests, scriptable per request.

Vectors are `deterministic_vectors(texts, dimensions)`, the same as DeterministicProvider,
so a test can compute what it expects. Each request takes the next scripted `Reply`
(429 with Retry-After, 500, a hang, wrong dimensions, an endless body...); when the script
runs out the server answers normally (or with `always`). Per text, whatever the batching,
`refuse` answers 400 and `vectors` poisons the vector. Every request is recorded.

    with OpenAIServer(dimensions=8) as server:
        server.script(Reply.error(500), Reply.error(500))
        ... POST f"{server.url}/embeddings" ...
        assert len(server.requests) == 3
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import orjson
from aiohttp import web

from v10r.providers.deterministic import deterministic_vectors


@dataclass(frozen=True)
class Reply:
    """How the server answers one request; the default is a correct answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # sleep before answering (longer than the client timeout = a hang)
    body: bytes | None = None  # a raw body instead of embeddings
    dimensions: int | None = None  # answer with this many dimensions instead
    extra_items: int = 0  # answer with this many more (or, negative, fewer) vectors
    reverse: bool = False  # list the vectors last-first (their `index` still says which)
    stream_bytes: int = 0  # stream this many bytes of an endless (valid-looking) JSON body
    declare_length: bool = False  # with stream_bytes: announce it in Content-Length

    @classmethod
    def error(cls, status: int = 500, message: str = "internal error") -> Reply:
        return cls(status=status, body=json.dumps({"error": {"message": message}}).encode())

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Reply:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=429, headers=headers,
                   body=b'{"error": {"message": "Rate limit reached"}}')

    @classmethod
    def unauthorized(cls, message: str = "Incorrect API key provided") -> Reply:
        return cls(status=401, body=json.dumps({"error": {"message": message}}).encode())

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(delay_s=seconds)

    @classmethod
    def huge(cls, size: int, *, declare_length: bool = False) -> Reply:
        """A 200 whose body never ends before `size` bytes: a runaway or hostile server."""
        return cls(stream_bytes=size, declare_length=declare_length)

    @classmethod
    def malformed(cls) -> Reply:
        return cls(body=b'{"data": [{"embedding": [0.1, 0.2')


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    json: Any

    @property
    def texts(self) -> list[str]:
        return list(self.json.get("input", [])) if isinstance(self.json, dict) else []


class OpenAIServer:
    """Runs in its own thread and event loop, so sync and async tests can both use it."""

    def __init__(self, *, dimensions: int = 384,
                 base64_support: Literal["yes", "reject", "ignore"] = "yes") -> None:
        self.dimensions = dimensions
        self.base64_support = base64_support
        self.requests: list[Request] = []
        self.always: Reply | None = None
        # Per-text behaviour, whatever the batching: a request holding a text that contains
        # a key of `refuse` is answered 400 with its message; a text containing a key of
        # `vectors` gets that vector: "zero", "nan", "inf" or "huge" (1e5, beyond halfvec).
        self.refuse: dict[str, str] = {}
        self.vectors: dict[str, str] = {}
        self.streamed_bytes = 0  # bytes of `Reply.huge` bodies actually sent
        self._script: deque[Reply] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL to put in `embedding.base_url` (the server serves `{url}/embeddings`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()
        self.always = None
        self.refuse.clear()
        self.vectors.clear()

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "test-model"}]})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        self.requests.append(Request(headers=dict(request.headers), json=payload))
        reply = self._script.popleft() if self._script else (self.always or Reply())
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.stream_bytes:
            return await self._stream(request, reply)
        refused = [m for key, m in self.refuse.items()
                   if any(key in str(t) for t in (payload or {}).get("input", []))]
        if refused:
            return web.json_response({"error": {"message": refused[0]}}, status=400)
        if reply.body is not None or reply.status != 200:
            return web.Response(status=reply.status, body=reply.body or b"",
                                headers=reply.headers, content_type="application/json")
        if not isinstance(payload, dict) or not isinstance(payload.get("input"), list):
            return web.json_response({"error": {"message": "`input` must be a list"}}, status=400)
        return self._answer(payload, reply)

    def _answer(self, payload: dict[str, Any], reply: Reply) -> web.Response:
        wants_base64 = payload.get("encoding_format") == "base64"
        if wants_base64 and self.base64_support == "reject":
            return web.json_response(
                {"error": {"message": "unsupported encoding_format: base64"}}, status=400)
        use_base64 = wants_base64 and self.base64_support == "yes"
        texts = list(payload["input"])
        texts = texts[: len(texts) + reply.extra_items] if reply.extra_items < 0 else (
            texts + texts[: reply.extra_items])
        dims = reply.dimensions or payload.get("dimensions") or self.dimensions
        vectors = self._vectors([str(text) for text in texts], dims)
        data = []
        for index, vector in enumerate(vectors):
            encoded = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                       if use_base64 else vector.tolist())
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        if reply.reverse:
            data.reverse()
        body = {"object": "list", "data": data, "model": payload.get("model"),
                "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        # orjson for base64 (the server's own CPU is not what a benchmark measures); float
        # lists through `json`, which writes NaN and Infinity as a careless server does
        raw = orjson.dumps(body) if use_base64 else json.dumps(body).encode()
        return web.Response(body=raw, content_type="application/json")

    def _vectors(self, texts: list[str], dims: int) -> np.ndarray:
        vectors = deterministic_vectors(texts, dims)
        for row, text in enumerate(texts):
            kind = next((k for key, k in self.vectors.items() if key in text), None)
            match kind:
                case "zero":
                    vectors[row] = 0
                case "nan" | "inf":
                    vectors[row, 0] = float(kind)
                case "huge":
                    vectors[row, 0] = 1e5
        return vectors

    async def _stream(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if reply.declare_length:
            response.content_length = reply.stream_bytes
        await response.prepare(request)
        chunk = b"0.125, " * 9362  # ≈64 KiB of one endless float list
        try:
            await response.write(b'{"data": [{"index": 0, "embedding": [')
            while self.streamed_bytes < reply.stream_bytes:
                await response.write(chunk)
                self.streamed_bytes += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response
