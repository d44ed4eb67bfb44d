"""The one place that turns a Redis URL into a client: a plain server or, through
Sentinel, whichever server is the primary right now (the queue and the shared rate
limiter both connect here).

Sentinel URL: `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`
with optional query parameters `sentinel_password`, `sentinel_username` (when the
sentinels require their own credentials). The userinfo's credentials are the data
servers'. Every connection asks the sentinels for the current primary, so after a
failover the next reconnect reaches the new one; a write that hits a demoted primary
fails as a connection error and is retried by the caller like any outage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel

from v10r.errors import QueueError
from v10r.redact import mask_url

SENTINEL_SCHEMES = ("redis+sentinel", "sentinel")
HINT = ("use redis+sentinel://[:password@]host:port[,host:port]/service_name[/db], "
        "e.g. redis+sentinel://:${REDIS_PASSWORD}@s1:26379,s2:26379/mymaster/0")


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A parsed `redis+sentinel://` URL (see the module docstring)."""

    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel: dict[str, str] = field(default_factory=dict)  # the sentinels' own credentials


def is_sentinel(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse without `urlsplit` (it cannot read a comma-separated host list)."""
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc
    username, _, password = userinfo.partition(":")
    hosts = tuple(_host(h, url) for h in hostlist.split(",") if h.strip())
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise QueueError(f"bad Redis Sentinel URL {mask_url(url)}", hint=HINT)
    params = dict(parse_qsl(query))
    unknown = set(params) - {"sentinel_password", "sentinel_username"}
    if unknown:
        raise QueueError(f"unknown parameter(s) {', '.join(sorted(unknown))} in Redis Sentinel "
                         f"URL {mask_url(url)}", hint="only sentinel_password and "
                         "sentinel_username are understood")
    sentinel = {k.removeprefix("sentinel_"): v for k, v in params.items()}
    return SentinelUrl(hosts, unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0,
                       unquote(username) or None, unquote(password) or None, sentinel)


def _host(text: str, url: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QueueError(f"bad host {text.strip()!r} in Redis Sentinel URL {mask_url(url)}",
                         hint=HINT)
    return host.strip("[]"), int(port)


def client_from_url(url: str, **options: Any) -> aioredis.Redis:
    """A client for `url` (`redis://`, `rediss://`, `unix://` or `redis+sentinel://`);
    `options` (timeouts…) apply to the data connections and the sentinel connections."""
    if not is_sentinel(url):
        return CancellableRedis.from_url(url, **options)
    parsed = parse_sentinel_url(url)
    sentinel = Sentinel(list(parsed.hosts), sentinel_kwargs={**options, **parsed.sentinel},
                        **options)
    return sentinel.master_for(parsed.service, redis_class=CancellableRedis, db=parsed.db,
                               username=parsed.username, password=parsed.password)


def _cancelling() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _raise_if_cancelled_since(before: int) -> None:
    if _cancelling() > before:
        raise asyncio.CancelledError("cancelled during a Redis command")


class CancellableRedis(aioredis.Redis):
    """A client whose commands never swallow a cancellation.

    redis-py can complete a command that was cancelled while in flight and return
    normally (about a third of the time with redis 8.1 on Python 3.11); the caller's
    cancellation is then lost, and a worker or heartbeat loop never stops. Each command
    here re-raises a cancellation that arrived while it ran."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        before = _cancelling()
        result = await super().execute_command(*args, **options)
        _raise_if_cancelled_since(before)
        return result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return CancellablePipeline(self.connection_pool, self.response_callbacks, transaction,
                                   shard_hint)


class CancellablePipeline(Pipeline):
    """A pipeline of `CancellableRedis`: its `execute` never swallows a cancellation."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        before = _cancelling()
        result = await super().execute(raise_on_error)
        _raise_if_cancelled_since(before)
        return result
