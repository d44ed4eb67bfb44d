"""Readiness of a listener or worker: can it reach its database, queue and provider?

Answered on `/readyz` (see `v10r.ops.metrics`). The provider is judged by its breaker
(a probe request would cost money at every health check); the database by one
`SELECT 1` on a fresh connection, bounded in time; the queue by asking its depth.
Every reason is masked: a health answer may be shown anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

from v10r.ops.metrics import Sample
from v10r.redact import mask_text

CHECK_TIMEOUT_S = 3.0

Check = Callable[[], Awaitable[object]]


async def readiness(checks: Mapping[str, Check],
                    breakers: Mapping[str, Mapping[str, object]] | None = None,
                    timeout: float = CHECK_TIMEOUT_S) -> tuple[bool, dict[str, str]]:
    """Run `checks` at once (each bounded by `timeout`); a breaker that is open fails too.

    `breakers` is `Breakers.snapshot()`: an open one says what is paused and since when.
    """
    names = sorted(checks)
    results = await asyncio.gather(*(_one(checks[n], timeout) for n in names))
    found = dict(zip(names, results, strict=True))
    for key, b in sorted((breakers or {}).items()):
        label = f"{b.get('what', 'service')} {b.get('name', key)}"
        if b.get("paused"):
            since = datetime.fromtimestamp(float(b.get("since") or 0), UTC)  # type: ignore[arg-type]
            found[label] = (f"paused since {since.isoformat(timespec='seconds')}: "
                            f"{mask_text(str(b.get('reason', '')))}")
        else:
            found.setdefault(label, "ok")
    return all(v == "ok" for v in found.values()), found


async def _one(check: Check, timeout: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", with why
        return mask_text(f"{type(exc).__name__}: {exc}".strip())
    return "ok"


def database_check(database: object) -> Check:
    """`SELECT 1` on a new connection with the role the process itself uses."""
    async def ping() -> None:
        from v10r import db

        conn = await db.connect(database, "write", vector_codec=False)  # type: ignore[arg-type]
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
    return ping


def queue_check(queue: object, pipeline: str) -> Check:
    async def ask() -> None:
        await queue.depth(pipeline)  # type: ignore[attr-defined]
    return ask


class QueueWatch:
    """Queue depth per pipeline, sampled in the background for `/metrics` (a scrape
    must not wait on a broker), and asked afresh by `/readyz`."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.queues: list[tuple[object, list[str]]] = []
        self.depths: dict[tuple[str, str], object] = {}  # (kind, pipeline) -> Depth

    def add(self, queue: object, pipelines: list[str]) -> None:
        self.queues.append((queue, pipelines))

    def checks(self) -> dict[str, Check]:
        return {f"queue {getattr(q, 'kind', '?')}": queue_check(q, names[0])
                for q, names in self.queues if names}

    async def sample(self) -> None:
        for queue, names in self.queues:
            for name in names:
                try:
                    depth = await asyncio.wait_for(queue.depth(name),  # type: ignore[attr-defined]
                                                   CHECK_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - an unreachable queue shows no depth
                    depth = None
                self.depths[(getattr(queue, "kind", "?"), name)] = depth

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except TimeoutError:
                pass

    def samples(self) -> list[Sample]:
        out: list[Sample] = []
        for (kind, pipeline), depth in sorted(self.depths.items()):
            labels = (("queue", kind), ("pipeline", pipeline))
            for field, text in DEPTH_FIELDS:
                value = getattr(depth, field, None)
                if value is not None:
                    out.append(Sample(f"queue_{field}", float(value), text, "gauge", labels))
        return out


DEPTH_FIELDS = [("waiting", "tasks published and not yet delivered (Kafka: consumer lag)"),
                ("in_flight", "tasks delivered to a worker and not yet acked"),
                ("consumers", "workers seen consuming")]


def ready_check(databases: Mapping[str, object], watch: QueueWatch,
                breakers: Callable[[], Mapping[str, Mapping[str, object]]]) -> Callable[
                    [], Awaitable[tuple[bool, dict[str, str]]]]:
    """The `/readyz` of a process using `databases` (by name), `watch`'s queues and
    `breakers` (a snapshot function)."""
    async def ready() -> tuple[bool, dict[str, str]]:
        checks = {f"database {name}": database_check(d) for name, d in databases.items()}
        return await readiness({**checks, **watch.checks()}, breakers())
    return ready
