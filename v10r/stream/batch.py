"""One batch of Kafka task messages, from decoding to the last ack-able outcome.

Faust acks every event of a `take` batch once the agent's loop body returns, and it
acks even when the body raises; so this handler never raises for a task: each one is
written, skipped, retried here with backoff, or dead-lettered with its error.

Dedup: a task is skipped when its row was fetched, by a batch that finished, after
the task was published (plus a clock-skew margin). That fetch saw the change the task
announces, or a later one, and a change after the fetch has a task of its own, so
the row's last change is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from v10r.errors import V10rError
from v10r.redact import mask_text
from v10r.stream.progress import Progress
from v10r.stream.settings import FaustSettings
from v10r.tasks import Task
from v10r.work.core import BatchOutcome, BatchProcessor, Status
from v10r.work.worker import process_through_outages

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Incoming:
    """A task message as the agent saw it."""

    raw: bytes
    published_at: float  # the message's timestamp, unix seconds
    attempts: int = 1
    task: Task | None = None
    error: str | None = None  # why the message could not be read


class FetchLedger(Protocol):
    """When each row was last fetched by a batch that finished (the dedup table)."""

    def last_fetch(self, key: str) -> float: ...

    def record(self, keys: Sequence[str], fetched_at: float) -> None: ...


class Outbox(Protocol):
    async def dead_letter(self, tasks: Sequence[tuple[Task, int]], error: str) -> None: ...

    async def republish(self, tasks: Sequence[Task]) -> None: ...


@dataclass(slots=True)
class _Pending:
    task: Task
    attempts: int


@dataclass
class BatchHandler:
    processor: BatchProcessor
    ledger: FetchLedger
    outbox: Outbox
    settings: FaustSettings
    progress: Progress = field(default_factory=Progress)

    @property
    def pipeline(self) -> str:
        return self.processor.pipeline.name

    async def handle(self, messages: Sequence[Incoming]) -> Progress:
        """Settle every message; returns what this batch added to the counters."""
        counts = Progress(batches=1)
        pending = []
        for message in messages:
            if message.task is None:
                counts.failed += 1
                log.error("pipeline %s: dropped an unreadable task message: %s",
                          self.pipeline, message.error)
            elif self._seen_since(message):
                counts.processed += 1
                counts.skipped += 1
                counts.deduplicated += 1
            else:
                pending.append(_Pending(message.task, message.attempts))
        while pending:
            pending = await self._attempt(pending, counts)
        self.progress = self.progress.add(counts)
        return counts

    def _seen_since(self, message: Incoming) -> bool:
        assert message.task is not None
        fetched = self.ledger.last_fetch(message.task.key.decode())
        return fetched > message.published_at + self.settings.clock_skew_s

    async def _attempt(self, pending: list[_Pending], counts: Progress) -> list[_Pending]:
        """One try at the batch; returns what should be tried again after a backoff."""
        fetched_at = time.time()
        outcome = await self._process([p.task for p in pending])
        done = [pending[i] for i in outcome.indices(done=True)]
        self.ledger.record([p.task.key.decode() for p in done], fetched_at)
        written = outcome.count(Status.WRITTEN)
        counts.processed += len(done)
        counts.written += written
        counts.skipped += len(done) - written
        again: list[_Pending] = []
        for error, group in _failures(pending, outcome).items():
            limit = self.processor.pipeline.queue.max_attempts
            spent = [f for f in group if not outcome.outcomes[f.index].retryable
                     or f.item.attempts >= limit]
            await self._dead_letter([f.item for f in spent], error, counts)
            again += [_Pending(f.item.task, f.item.attempts + 1) for f in group
                      if f not in spent]
        if again:
            counts.retried += len(again)
            await asyncio.sleep(self._delay(again[0].attempts))
        return again

    async def _process(self, tasks: list[Task]) -> BatchOutcome:
        """The core's outcome; service outages are waited out, bugs fail the batch."""
        async def pause(exc: BaseException, attempt: int) -> bool:
            delay = self._delay(attempt)
            log.warning("pipeline %s: %s; retrying in %.1fs", self.pipeline, _describe(exc),
                        delay)
            await asyncio.sleep(delay)
            return True

        outcome = await process_through_outages(self.processor, tasks, pause)
        assert outcome is not None  # this pause never gives up
        return outcome

    async def _dead_letter(self, spent: list[_Pending], error: str, counts: Progress) -> None:
        if not spent:
            return
        await self.outbox.dead_letter([(p.task, p.attempts) for p in spent], error)
        counts.failed += len(spent)
        log.warning("pipeline %s: dead-lettered %d task(s): %s", self.pipeline, len(spent),
                    mask_text(error))

    def _delay(self, attempt: int) -> float:
        s = self.settings
        return min(s.retry_max_s, s.retry_initial_s * 2 ** min(max(attempt - 2, 0), 16))


@dataclass(frozen=True, slots=True)
class _Failed:
    item: _Pending
    index: int


def _failures(pending: list[_Pending], outcome: BatchOutcome) -> dict[str, list[_Failed]]:
    groups: dict[str, list[_Failed]] = {}
    for i in outcome.indices(done=False):
        groups.setdefault(outcome.outcomes[i].error or "failed", []).append(_Failed(pending[i], i))
    return groups


def _describe(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, V10rError) else f"{type(exc).__name__}: {exc}"
    return mask_text(text or type(exc).__name__)

