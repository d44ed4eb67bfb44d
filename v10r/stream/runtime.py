"""What the Faust agents use at run time: the dedup ledger, the outbox, the resources.

Resources come from the one worker runtime (`v10r.work.runtime`: pools, providers
behind their breakers, the applied column names), created on a pipeline's first batch
and closed when the worker shuts down, so importing the app connects to nothing.
"""

from __future__ import annotations

import asyncio
import logging
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


class TableLedger:
    """The dedup ledger on a windowed Faust table: row key → when it was last fetched.

    The table writes its changelog by key (`use_partitioner`), so it can be written
    from the agent's loop body, after the batch's write, and a restarted worker
    recovers it. A window that closed forgets its rows: they are simply processed.
    """

    def __init__(self, table: Any) -> None:
        self.table = table  # a WindowWrapper, relative to now

    def last_fetch(self, key: str) -> float:
        return float(self.table[key].now() or 0.0)

    def record(self, keys: Sequence[str], fetched_at: float) -> None:
        for key in keys:
            if fetched_at > self.last_fetch(key):
                self.table[key] = fetched_at


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
                        runtime = self._runtime = self._runtime or Runtime(self._stack)
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
