"""What the Faust agents use at run time: the dedup ledger, the outbox, the resources.

Resources (database pools, providers) are created on a pipeline's first batch and
closed when the worker shuts down, so importing the app connects to nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from v10r.compile.names import pipeline_names
from v10r.db import create_pool
from v10r.providers.base import Provider
from v10r.providers.factory import create_provider
from v10r.spec.model import Pipeline
from v10r.stream.batch import BatchHandler, Incoming
from v10r.stream.settings import FaustSettings
from v10r.tasks import Task
from v10r.work.core import BatchProcessor
from v10r.work.worker import TRANSIENT_ERRORS

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

    async def dead_letter(self, tasks: Sequence[tuple[Task, int]], error: str) -> None:
        now = repr(time.time()).encode()
        await _send_all(self.dlq_topic, [
            (task, [("error", error.encode()), ("attempts", str(attempts).encode()),
                    ("failed_at", now)]) for task, attempts in tasks])

    async def republish(self, tasks: Sequence[Task]) -> None:
        await _send_all(self.tasks_topic, [(task, [("attempts", b"1")]) for task in tasks])


async def _send_all(topic: Any, entries: Sequence[tuple[Task, list[tuple[str, bytes]]]]) -> None:
    """Send every record, then wait until the broker has acknowledged each one."""
    pending = [await topic.send(key=task.key, value=task.to_json(), headers=headers)
               for task, headers in entries]
    for future in pending:
        await future


def incoming(event: Any) -> Incoming:
    """An `Incoming` from a Faust event of a task topic (raw key and value)."""
    message = event.message
    headers = message.headers or ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    attempts = next((int(v) for k, v in pairs if k == "attempts"), 1)
    raw = event.value if isinstance(event.value, bytes) else str(event.value).encode()
    result = Incoming(raw=raw, published_at=float(message.timestamp or 0.0), attempts=attempts)
    try:
        result.task = Task.from_json(raw)
    except Exception as exc:  # noqa: BLE001 - any unreadable message is reported, not raised
        result.error = str(exc)
    return result


@dataclass
class Resources:
    """Per pipeline: pools, provider and batch handler, created on first use."""

    settings: FaustSettings
    handlers: dict[str, BatchHandler] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handler(self, pipeline: Pipeline, ledger: TableLedger,
                      outbox: TopicOutbox) -> BatchHandler:
        """The pipeline's handler; an unreachable database is waited for, not fatal."""
        attempt = 0
        while pipeline.name not in self.handlers:
            try:
                async with self._lock:
                    if pipeline.name not in self.handlers:
                        processor = await self._processor(pipeline)
                        self.handlers[pipeline.name] = BatchHandler(processor, ledger, outbox,
                                                                    self.settings)
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                delay = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** attempt)
                log.warning("pipeline %s: cannot start (%s); retrying in %.1fs",
                            pipeline.name, exc, delay)
                await asyncio.sleep(delay)
        return self.handlers[pipeline.name]

    async def _processor(self, pipeline: Pipeline) -> BatchProcessor:
        write_pool = await create_pool(pipeline.database, "write", pipeline=pipeline.name)
        self._closers.append(write_pool.close)
        read_pool = write_pool
        if pipeline.database.read_dsn:
            read_pool = await create_pool(pipeline.database, "read", pipeline=pipeline.name)
            self._closers.append(read_pool.close)
        provider: Provider = create_provider(pipeline.embedding, pipeline=pipeline.name)
        self._closers.append(provider.aclose)
        return BatchProcessor(pipeline, pipeline_names(pipeline), read_pool, write_pool, provider)

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                await asyncio.wait_for(close(), 10)
            except Exception as exc:  # noqa: BLE001 - close the rest regardless
                log.warning("closing a resource failed: %s", exc)
        self.handlers.clear()
