"""Prometheus metrics and health over plain HTTP, on one port per process.

`GET /metrics` is prometheus-client's text exposition of this process's histograms (batch
duration, provider latency, enqueue-to-write latency), build info, and the samples the
listener and workers report when scraped (counters, breakers, queue depth); `/healthz`
answers while the process runs; `/readyz` runs the process's readiness check (see
`v10r.ops.health`) and answers 200 or 503 with what it found, as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from v10r import __version__
from v10r.errors import ConnectionFailed


@dataclass(frozen=True, slots=True)
class Sample:
    name: str  # without the `v10r_` prefix
    value: float
    help: str
    kind: str = "counter"  # or "gauge"
    labels: tuple[tuple[str, str], ...] = ()


Collect = Callable[[], Iterable[Sample]]
# (ready?, what each check found): the answer of `/readyz`.
Ready = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

disable_created_metrics()  # `_created` series only double what a scrape shows
# One registry per process: what this process measures, nothing of the library's own.
REGISTRY = CollectorRegistry(auto_describe=True)
BATCH_SECONDS = Histogram(
    "v10r_batch_duration_seconds", "time to process one batch (fetch, embed, write)",
    ["pipeline"], registry=REGISTRY, buckets=LATENCY_BUCKETS)
PROVIDER_SECONDS = Histogram(
    "v10r_provider_request_seconds", "time of one embedding request to the provider",
    ["provider"], registry=REGISTRY, buckets=LATENCY_BUCKETS)
WRITE_LATENCY_SECONDS = Histogram(
    "v10r_enqueue_to_write_seconds", "time from a task's enqueueing to its vector's write "
    "(where the broker stamps messages)", ["pipeline"], registry=REGISTRY,
    buckets=LATENCY_BUCKETS)
Info("v10r_build", "the running v10r release", registry=REGISTRY).info({"version": __version__})


class _Samples:
    """A collector over `Sample`s, asked afresh at every scrape."""

    def __init__(self, collect: Collect) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        return iter(families(self._collect()))

    def describe(self) -> list[Metric]:
        return []  # names are only known when scraped


def families(samples: Iterable[Sample]) -> list[Metric]:
    """Samples grouped into metric families, in order of first appearance."""
    found: dict[str, Metric] = {}
    for s in samples:
        name = f"v10r_{s.name}"
        family = found.get(name)
        if family is None:
            make = CounterMetricFamily if s.kind == "counter" else GaugeMetricFamily
            family = make(name, s.help, labels=[k for k, _ in s.labels])
            found[name] = family
        family.add_metric([v for _, v in s.labels], s.value)
    return list(found.values())


def render(samples: Iterable[Sample] = (), *, registry: CollectorRegistry | None = None) -> str:
    """The text exposition format of `samples`, plus `registry`'s metrics when given."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Samples(lambda: samples))
    text = generate_latest(scrape).decode()
    return (generate_latest(registry).decode() + text) if registry is not None else text


async def _answer(path: bytes, collect: Collect, ready: Ready | None) -> tuple[str, bytes, str]:
    """(status, body, content type) of one request."""
    match path:
        case b"/metrics":
            return "200 OK", render(collect(), registry=REGISTRY).encode(), \
                "text/plain; version=0.0.4; charset=utf-8"
        case b"/healthz":
            return "200 OK", b'{"status": "alive"}\n', "application/json"
        case b"/readyz":
            ok, checks = await ready() if ready is not None else (True, {})
            body = json.dumps({"status": "ready" if ok else "not ready", "checks": checks},
                              indent=2, ensure_ascii=True) + "\n"
            return ("200 OK" if ok else "503 Service Unavailable"), body.encode(), \
                "application/json"
    return "404 Not Found", b"try /metrics, /healthz or /readyz\n", "text/plain"


@contextlib.asynccontextmanager
async def serving(port: int | None, collect: Collect, host: str = "0.0.0.0",
                  ready: Ready | None = None) -> AsyncIterator[int | None]:
    """Serve `/metrics`, `/healthz` and `/readyz` on `port` while the block runs
    (None: no server); yields the port."""
    if port is None:
        yield None
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass  # headers
            path = request.split(b" ")[1] if request.count(b" ") >= 2 else b""
            try:
                status, body, kind = await _answer(path.split(b"?")[0], collect, ready)
            except Exception as exc:  # noqa: BLE001 - a scrape must not kill the server
                status, kind = "500 Internal Server Error", "text/plain"
                body = f"error: {type(exc).__name__}\n".encode()
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host, port)
    except OSError as exc:
        raise ConnectionFailed(f"cannot serve metrics on port {port}: {exc.strerror}",
                               hint="pick another --metrics-port") from None
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
