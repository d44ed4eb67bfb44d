"""The Faust adapter of the worker runtime: one `take` batch, from decoding to outcomes.

Faust acks every event of a `take` batch once the agent's loop body returns, and it
acks even when the body raises; so this handler never raises for a task: each one is
written, skipped, retried here with backoff, or dead-lettered with its error (an
unreadable message too). Outages are held inside the runtime, without spending attempts.

Dedup: a task is skipped when its row was fetched, by a batch that finished, after
the task was published (plus a clock-skew margin). That fetch saw the change the task
announces, or a later one, and a change after the fetch has a task of its own, so
the row's last change is never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from v10r.providers.retry import Backoff
from v10r.queues.base import Delivery
from v10r.stream.settings import FaustSettings
from v10r.tasks import Task
from v10r.work.runtime import PipelineRuntime, observe_write_latency
from v10r.work.settle import (
    Counters,
    count,
    dead_letter_unreadable,
    log_dead_letters,
    plan_settlement,
)


@dataclass(slots=True)
class Incoming:
    """A task message as the agent saw it."""

    raw: bytes
    published_at: float  # the message's timestamp, unix seconds
    attempts: int = 1
    task: Task | None = None
    error: str | None = None  # why the message could not be read

    def delivery(self) -> Delivery:
        return Delivery(self.task, self.attempts, raw=self.raw, error=self.error,
                        enqueued_at=self.published_at or None)


class FetchLedger(Protocol):
    """When each row was last fetched by a batch that finished (the dedup table)."""

    def last_fetch(self, key: str) -> float: ...

    def record(self, keys: Sequence[str], fetched_at: float) -> None: ...


class Outbox(Protocol):
    async def dead_letter(self, deliveries: Sequence[Delivery], error: str) -> None: ...

    async def republish(self, tasks: Sequence[Task]) -> None: ...


@dataclass
class BatchHandler:
    runtime: PipelineRuntime
    ledger: FetchLedger
    outbox: Outbox
    settings: FaustSettings
    _never: asyncio.Event = field(default_factory=asyncio.Event)  # Faust stops by cancelling

    @property
    def progress(self) -> Counters:
        """This run's totals (outages held included), as the progress table keeps them."""
        return self.runtime.counters

    @property
    def pipeline(self) -> str:
        return self.runtime.pipeline.name

    @property
    def backoff(self) -> Backoff:
        return Backoff(base_s=self.settings.retry_initial_s, cap_s=self.settings.retry_max_s,
                       jitter=0.5)

    async def handle(self, messages: Sequence[Incoming]) -> Counters:
        """Settle every message; returns what this batch added to the counters."""
        counts = Counters(batches=1)
        pending: list[Delivery] = []
        keys: list[str] = []  # each pending row's ledger key, made once per row
        unreadable = []
        for message in messages:
            if message.task is None:
                unreadable.append(message.delivery())
                continue
            key = message.task.key.decode()
            if self.ledger.last_fetch(key) > message.published_at + self.settings.clock_skew_s:
                counts.processed += 1
                counts.skipped += 1
                counts.deduplicated += 1
            else:
                pending.append(message.delivery())
                keys.append(key)
        counts.dead_lettered += await dead_letter_unreadable(self.pipeline, unreadable,
                                                             self.outbox.dead_letter)
        while pending:
            pending, keys = await self._attempt(pending, keys, counts)
        self.runtime.counters.add(counts)
        return counts

    async def _attempt(self, pending: list[Delivery], keys: list[str],
                       counts: Counters) -> tuple[list[Delivery], list[str]]:
        """One try at the batch; returns what should be tried again after a backoff."""
        fetched_at = time.time()
        tasks = [d.task for d in pending if d.task is not None]
        outcome = await self.runtime.run(tasks, self._never)
        assert outcome is not None  # only a stop gives up, and Faust stops by cancelling
        observe_write_latency(self.pipeline, outcome, [d.enqueued_at for d in pending])
        plan = plan_settlement(outcome, [d.attempts for d in pending],
                               self.runtime.pipeline.queue.max_attempts)
        self.ledger.record([keys[i] for i in plan.done], fetched_at)
        for reason, indices in plan.dead.items():
            await self.outbox.dead_letter([pending[i] for i in indices], reason)
            log_dead_letters(self.pipeline, [tasks[i].id for i in indices], reason)
        batch = count(outcome, plan)
        batch.batches = 0
        counts.add(batch)
        retry = [i for indices in plan.retry.values() for i in indices]
        again = [Delivery(pending[i].task, pending[i].attempts + 1,
                          enqueued_at=pending[i].enqueued_at) for i in retry]
        if again:
            await asyncio.sleep(self.backoff.delay(again[0].attempts - 2))
        return again, [keys[i] for i in retry]
