"""Circuit breakers: an outage pauses consumption instead of spending tasks' attempts.

One breaker per provider and per database. A failure of the service itself (connection
refused, timeout, HTTP 5xx, 429 after the provider's own retries) opens it: the batch in
hand is held, the loops stop consuming, and one waiter probes with backoff until the
service answers. Credentials the provider rejects (401/403) open it too, with a loud
error, since every task would fail the same way. A failure of one task's input leaves it
closed: that task alone is retried and dead-lettered.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import numpy as np

from v10r.errors import (
    ConnectionFailed,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
)
from v10r.ops.metrics import Sample
from v10r.providers.base import Provider
from v10r.providers.retry import OUTAGE_BACKOFF, Backoff
from v10r.redact import mask_text

log = logging.getLogger("v10r.work")

Kind = Literal["outage", "auth", "schema", "task"]

# Failures of a database connection rather than of a task.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError, ConnectionFailed,
)
PROBE_TEXT = "v10r probe"


def failure_kind(exc: BaseException) -> Kind:
    """The one classification of failures: the service's (outage, auth) or the task's."""
    if isinstance(exc, ProviderAuthError):
        return "auth"
    if isinstance(exc, ProviderUnavailable):
        return "outage"
    if isinstance(exc, ProviderError):
        return "outage" if exc.retryable else "task"
    if isinstance(exc, DATABASE_ERRORS):
        return "outage"
    return "task"


class ServicePaused(Exception):
    """Raised through the core while a breaker is open: the batch is held, not failed."""

    def __init__(self, breaker: Breaker) -> None:
        super().__init__(f"{breaker.what} {breaker.name} is paused: {breaker.reason}")
        self.breaker = breaker


class SuspectBatch(Exception):
    """The provider answered a probe, then failed this batch again: the batch is suspect."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class Breaker:
    what: str  # "provider" | "database"
    name: str  # masked: no secret ever reaches a log line or a metric
    backoff: Backoff = OUTAGE_BACKOFF
    kind: Kind | None = None  # None: closed
    reason: str = ""
    since: float = 0.0  # unix time the breaker opened
    recovering: bool = False  # closed by a probe; no real request has passed since
    _attempt: int = 0
    _retry_after: float | None = None
    _probing: bool = False
    _closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self._closed.set()

    @property
    def is_open(self) -> bool:
        return self.kind is not None

    def open(self, kind: Kind, exc: BaseException) -> None:
        """Open (or keep open) on `exc`; logs one line when it opens, never a traceback."""
        self.reason = mask_text(getattr(exc, "message", None) or str(exc)
                                or type(exc).__name__)
        self._retry_after = getattr(exc, "retry_after", None)
        if self.kind is not None:
            return
        self.kind, self.since, self._attempt = kind, time.time(), 0
        self._closed.clear()
        when = datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds")
        if kind == "auth":
            log.error("paused: %s %s rejected the credentials since %s: %s -- fix "
                      "embedding.api_key (or its environment variable) and restart; no task "
                      "is dead-lettered meanwhile", self.what, self.name, when, self.reason)
        elif kind == "schema":
            log.warning("paused: %s %s lacks the pipeline's columns since %s: %s -- run "
                        "`v10r apply`", self.what, self.name, when, self.reason)
        else:
            log.warning("paused: %s unreachable since %s (%s %s): %s", self.what, when,
                        self.what, self.name, self.reason)

    def close(self, *, probed: bool = False) -> None:
        self.recovering = probed
        if self.kind is None:
            return
        log.warning("resumed: %s %s answers again after %.0f s", self.what, self.name,
                    time.time() - self.since)
        self.kind, self.reason, self._retry_after = None, "", None
        self._closed.set()

    async def wait(self, stop: asyncio.Event,
                   probe: Callable[[], Awaitable[object]] | None = None) -> bool:
        """Back off, then probe; True once the caller should try again, False on stop.

        Without a `probe`, the caller's own retry is the probe (and closes the breaker
        when it passes). With one, a single waiter probes while the others wait for it.
        """
        while self.is_open and not stop.is_set():
            if probe is not None and self._probing:
                await _first(stop, self._closed.wait(), self.backoff.cap_s)
                continue
            delay = self.backoff.delay(self._attempt, self._retry_after)
            self._attempt, self._retry_after = self._attempt + 1, None
            if probe is None:
                await _first(stop, asyncio.sleep(delay), delay)
                return not stop.is_set()
            self._probing = True
            try:
                await _first(stop, self._closed.wait(), delay)
                if self.is_open and not stop.is_set():
                    await self._probe(probe)
            finally:
                self._probing = False
        return not stop.is_set()

    async def _probe(self, probe: Callable[[], Awaitable[object]]) -> None:
        try:
            await probe()
        except Exception as exc:  # noqa: BLE001 - any failure keeps it open; classified
            kind = failure_kind(exc)
            if kind == "task":  # the service answered: it is up
                self.close(probed=True)
            else:
                self.open(kind, exc)
            return
        self.close(probed=True)

    async def until_closed(self, stop: asyncio.Event) -> None:
        await _first(stop, self._closed.wait(), None)

    def snapshot(self) -> dict[str, object]:
        return {"what": self.what, "name": self.name, "paused": self.is_open,
                "kind": self.kind or "", "reason": self.reason,
                "since": self.since if self.is_open else None}


async def _first(stop: asyncio.Event, awaitable: Awaitable[object],
                 timeout: float | None) -> None:
    """Wait for `awaitable`, `stop`, or `timeout` seconds, whichever comes first."""
    waiters = [asyncio.ensure_future(awaitable), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


@dataclass
class Breakers:
    """Every breaker of a process, by key; what `status` and metrics show."""

    by_key: dict[str, Breaker] = field(default_factory=dict)
    backoff: Backoff = OUTAGE_BACKOFF

    def get(self, what: str, name: str, identity: str = "") -> Breaker:
        """The breaker of one service; `identity` tells apart services of one name."""
        key = f"{what}:{name}"
        if identity:  # hashed: an identity may hold a password, a key never does
            key += "#" + hashlib.sha256(identity.encode()).hexdigest()[:8]
        if key not in self.by_key:
            self.by_key[key] = Breaker(what, name, self.backoff)
        return self.by_key[key]

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {key: b.snapshot() for key, b in sorted(self.by_key.items())}

    def samples(self) -> list[Sample]:
        out = []
        for b in sorted(self.by_key.values(), key=lambda b: (b.what, b.name)):
            labels = (("service", b.what), ("name", b.name), ("reason", b.kind or ""))
            out += [Sample("paused", 1.0 if b.is_open else 0.0,
                           "1 while consumption is paused by this service's breaker",
                           kind="gauge", labels=labels),
                    Sample("paused_since_seconds", b.since if b.is_open else 0.0,
                           "unix time the breaker opened (0: closed)", kind="gauge",
                           labels=labels)]
        return out


class GuardedProvider:
    """A provider behind its breaker: while open, `embed` holds the batch at once."""

    def __init__(self, inner: Provider, breaker: Breaker) -> None:
        self.inner, self.breaker = inner, breaker
        self.name, self.model, self.dimensions = inner.name, inner.model, inner.dimensions
        self.max_batch_size, self.max_input_chars = inner.max_batch_size, inner.max_input_chars

    async def embed(self, texts: Sequence[str], *, priority: str = "live") -> np.ndarray:
        if self.breaker.is_open:
            raise ServicePaused(self.breaker)
        try:
            vectors = await self.inner.embed(texts, priority=priority)
        except ProviderError as exc:
            kind = failure_kind(exc)
            if kind == "task":
                raise
            if kind == "outage" and self.breaker.recovering:
                # Right after a probe passed, the failure is likely this batch's own: the
                # runtime isolates the texts that break the server (and spends attempts).
                self.breaker.recovering = False
                raise SuspectBatch(exc) from None
            self.breaker.open(kind, exc)
            raise ServicePaused(self.breaker) from None
        self.breaker.close()
        return vectors

    async def probe(self) -> None:
        await self.inner.embed([PROBE_TEXT], priority="live")

    async def aclose(self) -> None:
        await self.inner.aclose()
