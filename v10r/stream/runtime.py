"""What the Faust agents use at run time: the dedup ledger, the outbox, the resources.

Resources come from the one worker runtime (`v10r.work.runtime`: pools, providers
behind their breakers, the applied column names), created on a pipeline's first batch
and closed when the worker shuts down, so importing the app connects to nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from v10r.providers.retry import OUTAGE_BACKOFF
from v10r.queues.base import Delivery, read_deliveries
from v10r.queues.kafka import Record, dead_letter_record, task_record
from v10r.redact import mask_text
from v10r.spec.model import Pipeline
from v10r.stream.batch import BatchHandler, Incoming
from v10r.stream.settings import FaustSettings
from v10r.tasks import Task
from v10r.work.breaker import DATABASE_ERRORS
from v10r.work.runtime import Runtime

log = logging.getLogger(__name__)

LEDGER_SLOTS = 2048  # batches the dedup ledger remembers per pipeline
LEDGER_FUTURE_S = 60.0  # clock skew tolerated in a recovered entry


class TableLedger:
    """The dedup ledger: one table entry per finished batch (its fetch time and row
    keys), and an index row key → last fetch kept in memory.

    One changelog record per batch, not per row. Entries go round `slots` keys, so the
    table, its changelog and the index stay bounded: an overwritten batch is forgotten
    and its rows are simply processed again (a duplicate costs one SELECT). The index
    is rebuilt from the table after Faust recovers it, so a restarted worker still
    skips what it fetched before.
    """

    def __init__(self, table: Any, slots: int = LEDGER_SLOTS) -> None:
        self.table, self.slots = table, slots
        self._next = random.randrange(slots)  # workers sharing the table start apart
        self._index: dict[str, float] = {}
        self._stale = True
        table.on_recover(self._recovered)

    async def _recovered(self) -> None:
        self._stale = True

    def last_fetch(self, key: str) -> float:
        if self._stale:
            self._rebuild()
        return self._index.get(key, 0.0)

    def record(self, keys: Sequence[str], fetched_at: float) -> None:
        if not keys:
            return
        if self._stale:
            self._rebuild()
        slot = str(self._next)
        self._next = (self._next + 1) % self.slots
        old = self.table.get(slot)
        if old:
            self._forget(old)
        self.table[slot] = {"at": fetched_at, "keys": list(keys)}
        self._remember(keys, fetched_at)

    def _remember(self, keys: Sequence[str], fetched_at: float) -> None:
        index = self._index
        for key in keys:
            if fetched_at > index.get(key, 0.0):
                index[key] = fetched_at

    def _forget(self, entry: Any) -> None:
        at, keys = _batch_entry(entry)
        for key in keys:
            if self._index.get(key) == at:
                del self._index[key]

    def _rebuild(self) -> None:
        self._index, self._stale = {}, False
        for entry in self.table.values():
            at, keys = _batch_entry(entry)
            self._remember(keys, at)


def _batch_entry(entry: Any) -> tuple[float, list[str]]:
    """(fetch time, row keys) of a ledger entry; nothing from one that is malformed or
    claims a fetch in the future, which would skip the rows' tasks (the changelog topic
    is writable by other clients of the broker)."""
    if not isinstance(entry, Mapping):
        return 0.0, []
    at, keys = entry.get("at"), entry.get("keys")
    if (isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(keys, list)
            or not math.isfinite(at) or at > time.time() + LEDGER_FUTURE_S):
        return 0.0, []
    return float(at), [key for key in keys if isinstance(key, str)]


class TopicOutbox:
    """Dead letters in the KafkaQueue's record format, and re-published tasks."""

    def __init__(self, tasks_topic: Any, dlq_topic: Any) -> None:
        self.tasks_topic = tasks_topic
        self.dlq_topic = dlq_topic

    async def dead_letter(self, deliveries: Sequence[Delivery], error: str) -> None:
        now = time.time()
        await _send_all(self.dlq_topic, [dead_letter_record(d, error, now) for d in deliveries])

    async def republish(self, tasks: Sequence[Task]) -> None:
        await _send_all(self.tasks_topic, [task_record(task) for task in tasks])


async def _send_all(topic: Any, records: Sequence[Record]) -> None:
    """Send every record, then wait until the broker has acknowledged each one."""
    pending = [await topic.send(key=key, value=value, headers=headers)
               for key, value, headers in records]
    for future in pending:
        await future


def incoming(event: Any) -> list[Incoming]:
    """One `Incoming` per row of a Faust event of a task topic (raw key and value)."""
    message = event.message
    headers = message.headers or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    attempts = next((_count(v) for k, v in pairs if k == "attempts"), 1)
    raw = event.value if isinstance(event.value, bytes) else str(event.value).encode()
    return [Incoming(raw=raw, published_at=float(message.timestamp or 0.0), attempts=attempts,
                     task=read.task, error=read.error)
            for read in read_deliveries(raw, attempts, None)]


def _count(value: bytes | str) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


@dataclass
class Resources:
    """Per pipeline: the shared runtime and a batch handler, created on first use."""

    settings: FaustSettings
    handlers: dict[str, BatchHandler] = field(default_factory=dict)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _runtime: Runtime | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handler(self, pipeline: Pipeline, ledger: TableLedger,
                      outbox: TopicOutbox) -> BatchHandler:
        """The pipeline's handler; an unreachable database is waited for, not fatal."""
        attempt = 0
        while pipeline.name not in self.handlers:
            try:
                async with self._lock:
                    if pipeline.name not in self.handlers:
                        runtime = self._runtime = self._runtime or Runtime(
                            self._stack, pool_size=self.settings.concurrency + 1)
                        self.handlers[pipeline.name] = BatchHandler(
                            await runtime.open(pipeline), ledger, outbox, self.settings)
            except DATABASE_ERRORS as exc:
                delay = OUTAGE_BACKOFF.delay(attempt)
                attempt += 1
                log.warning("pipeline %s: cannot start (%s); retrying in %.1fs",
                            pipeline.name, mask_text(str(exc)), delay)
                await asyncio.sleep(delay)
        return self.handlers[pipeline.name]

    async def aclose(self) -> None:
        try:
            await self._stack.aclose()
        except Exception as exc:  # noqa: BLE001 - closing must not fail the shutdown
            log.warning("closing a resource failed: %s", exc)
        self._stack, self._runtime = AsyncExitStack(), None
        self.handlers.clear()
