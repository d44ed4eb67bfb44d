"""The queue consumer loop: consume → process → ack / retry / dead-letter, until stopped.

A task is acked only after its write committed. When the database is unreachable the
loop backs off and retries the batch it holds; when the broker fails (any client error
on consume, ack or retry) it backs off and consumes again, and the broker redelivers
what was not settled. It never crash-loops and never drops work; anything it holds when
stopped stays unacked, so the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field

import asyncpg

from v10r.errors import ConnectionFailed, PlanError, ProviderAuthError, QueueError
from v10r.ops.metrics import Sample
from v10r.queues.base import Delivery, Queue
from v10r.redact import mask_text
from v10r.tasks import Task
from v10r.work.core import BatchOutcome, BatchProcessor, Status, TaskOutcome

log = logging.getLogger(__name__)

# Failures of a service rather than of a task: hold the batch, back off, try again.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError, ConnectionFailed, QueueError, PlanError,
    ProviderAuthError,  # bad credentials: hold every batch until they are fixed
)


@dataclass
class WorkerStats:
    """Counters for `status` and metrics; shared by all loops of one pipeline."""

    pipeline: str
    processed: int = 0  # tasks acked
    written: int = 0  # rows whose vector (or empty-text marker) was written
    skipped: int = 0  # acked without a write: unchanged, gone, filtered out, superseded
    failed: int = 0  # tasks given back for another attempt
    dead_lettered: int = 0
    errors: int = 0  # database/broker errors that made a loop back off
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rows_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> dict[str, float | int | str]:
        data = asdict(self)
        data.pop("started")
        data["rows_per_second"] = round(self.rows_per_second, 1)
        return data


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap, for service outages."""

    initial: float = 0.2
    maximum: float = 15.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * 2 ** min(attempt, 16))


class PipelineWorker:
    """One consumer loop for one pipeline; run several for concurrency."""

    def __init__(self, processor: BatchProcessor, queue: Queue, *, batch_size: int = 64,
                 timeout: float = 1.0, stats: WorkerStats | None = None,
                 backoff: Backoff = Backoff()) -> None:
        self.processor = processor
        self.queue = queue
        self.pipeline = processor.pipeline.name
        self.batch_size = batch_size
        self.timeout = timeout
        self.stats = stats or WorkerStats(self.pipeline)
        self.backoff = backoff
        self._max_attempts = processor.pipeline.queue.max_attempts
        self._retry_streak = 0  # consecutive batches with retryable failures

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set; the batch in hand is finished first."""
        failures = 0
        while not stop.is_set():
            try:
                deliveries = await self.queue.consume(self.pipeline, self.batch_size,
                                                      self.timeout)
            except Exception as exc:  # noqa: BLE001 - every broker client has its own errors

                failures += 1
                await self._pause("consume", exc, failures, stop)
                continue
            failures = 0
            if deliveries:
                await self.handle(deliveries, stop)

    async def handle(self, deliveries: Sequence[Delivery], stop: asyncio.Event) -> None:
        """Process one batch and settle every delivery of it."""
        outcome = await self._process(deliveries, stop)
        if outcome is None:
            return  # stopped during an outage: left unacked, the broker redelivers
        self.stats.batches += 1
        await self._settle(deliveries, outcome, stop)
        if outcome.indices(done=False, retryable=True):
            # The provider already retried; give it a moment before the next attempts.
            self._retry_streak += 1
            await _wait(stop, self.backoff.delay(self._retry_streak - 1))
        else:
            self._retry_streak = 0

    async def _process(self, deliveries: Sequence[Delivery],
                       stop: asyncio.Event) -> BatchOutcome | None:
        async def pause(exc: BaseException, attempt: int) -> bool:
            if stop.is_set():
                return False
            await self._pause("process", exc, attempt, stop)
            return True

        return await process_through_outages(self.processor, [d.task for d in deliveries],
                                             pause)

    async def _settle(self, deliveries: Sequence[Delivery], outcome: BatchOutcome,
                      stop: asyncio.Event) -> None:
        done = [deliveries[i] for i in outcome.indices(done=True)]
        retry = _by_error(deliveries, outcome, retryable=True)
        fatal = _by_error(deliveries, outcome, retryable=False)
        try:
            if done:
                await self.queue.ack(self.pipeline, done)
            for error, group in retry.items():
                await self.queue.retry(self.pipeline, group, error)
            for error, group in fatal.items():
                await self.queue.dead_letter(self.pipeline, group, error)
        except Exception as exc:  # noqa: BLE001 - unsettled ones are redelivered
            await self._pause("settle", exc, 1, stop)
            return
        self._count(outcome, done, retry, fatal)

    def _count(self, outcome: BatchOutcome, done: list[Delivery],
               retry: dict[str, list[Delivery]], fatal: dict[str, list[Delivery]]) -> None:
        stats = self.stats
        written = outcome.count(Status.WRITTEN)
        stats.processed += len(done)
        stats.written += written
        stats.skipped += len(done) - written
        retried = [d for group in retry.values() for d in group]
        spent = sum(d.attempts >= self._max_attempts for d in retried)
        stats.failed += len(retried) - spent
        stats.dead_lettered += spent + sum(len(group) for group in fatal.values())
        for error, group in fatal.items():
            log.warning("pipeline %s: dead-lettered %d task(s): %s", self.pipeline, len(group),
                        mask_text(error))

    async def _pause(self, step: str, exc: BaseException, attempt: int,
                     stop: asyncio.Event) -> None:
        self.stats.errors += 1
        delay = self.backoff.delay(attempt - 1)
        log.warning("pipeline %s: %s failed (%s); retrying in %.1fs", self.pipeline, step,
                    mask_text(str(exc) or type(exc).__name__), delay)
        await _wait(stop, delay)


async def process_through_outages(
        processor: BatchProcessor, tasks: Sequence[Task],
        pause: Callable[[BaseException, int], Awaitable[bool]]) -> BatchOutcome | None:
    """The core's outcome, riding out database and broker outages.

    A transient error calls `pause(error, attempt)` and tries again (no attempt is
    spent); `pause` returning False gives up with None, leaving the batch unsettled for
    redelivery. Any other exception is a bug: the whole batch fails, retryable, so it is
    never silently dropped.
    """
    attempt = 0
    while True:
        try:
            return await processor.process(tasks)
        except TRANSIENT_ERRORS as exc:
            attempt += 1
            if not await pause(exc, attempt):
                return None
        except Exception as exc:
            log.exception("pipeline %s: unexpected error processing %d task(s)",
                          processor.pipeline.name, len(tasks))
            message = mask_text(f"unexpected error: {type(exc).__name__}: {exc}")
            return BatchOutcome([_failed(message) for _ in tasks])


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when stopping."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def _failed(message: str) -> TaskOutcome:
    return TaskOutcome(Status.FAILED, message, retryable=True)


def _by_error(deliveries: Sequence[Delivery], outcome: BatchOutcome,
              retryable: bool) -> dict[str, list[Delivery]]:
    groups: dict[str, list[Delivery]] = {}
    for i in outcome.indices(done=False, retryable=retryable):
        groups.setdefault(outcome.outcomes[i].error or "failed", []).append(deliveries[i])
    return groups


def worker_samples(stats: dict[str, WorkerStats]) -> list[Sample]:
    """Prometheus samples of every pipeline's counters (see `v10r.ops.metrics`)."""
    described = [("processed", "tasks acked"), ("written", "rows whose vector was written"),
                 ("skipped", "tasks acked without a write (unchanged, gone, superseded)"),
                 ("failed", "tasks given back for another attempt"),
                 ("dead_lettered", "tasks sent to the dead-letter queue"),
                 ("errors", "database or broker errors that made a loop back off"),
                 ("batches", "batches processed")]
    return [Sample(f"worker_{field}_total", getattr(s, field), help, labels=(("pipeline", name),))
            for field, help in described for name, s in sorted(stats.items())]
