"""Prometheus metrics over plain HTTP: `GET /metrics` in the text exposition format.

No dependency: one asyncio server that renders the live counters of the listener and
the workers each time it is scraped. Counters only ever grow, gauges may fall.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from v10r.errors import ConnectionFailed


@dataclass(frozen=True, slots=True)
class Sample:
    name: str  # without the `v10r_` prefix
    value: float
    help: str
    kind: str = "counter"  # or "gauge"
    labels: tuple[tuple[str, str], ...] = ()


Collect = Callable[[], Iterable[Sample]]


def render(samples: Iterable[Sample]) -> str:
    """The text exposition format: HELP and TYPE once per metric, then its samples."""
    lines: list[str] = []
    seen: set[str] = set()
    for s in samples:
        name = f"v10r_{s.name}"
        if name not in seen:
            seen.add(name)
            lines += [f"# HELP {name} {s.help}", f"# TYPE {name} {s.kind}"]
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels)
        lines.append(f"{name}{{{labels}}} {s.value:g}" if labels else f"{name} {s.value:g}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@contextlib.asynccontextmanager
async def serving(port: int | None, collect: Collect, host: str = "0.0.0.0"
                  ) -> AsyncIterator[int | None]:
    """Serve `/metrics` on `port` while the block runs (None: no server); yields the port."""
    if port is None:
        yield None
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass  # headers
            path = request.split(b" ")[1] if request.count(b" ") >= 2 else b""
            if path.split(b"?")[0] == b"/metrics":
                status, body = "200 OK", render(collect()).encode()
            else:
                status, body = "404 Not Found", b"try /metrics\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
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
