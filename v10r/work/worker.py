"""The queue adapter of the worker runtime: consume → run → ack / retry / dead-letter.

A task is acked only after its write committed. Outages are held inside the runtime
(`PipelineRuntime.run`), and the loop stops consuming while a breaker is open; when the
broker fails (any client error on consume, ack or retry) the loop backs off and consumes
again, and the broker redelivers what was not settled. Up to `in_flight` batches are
processed at once, so one slow provider request holds back only its own rows. Anything
held when stopped stays unacked, so the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from v10r.providers.retry import OUTAGE_BACKOFF, Backoff
from v10r.queues.base import Delivery, Queue
from v10r.redact import mask_text
from v10r.work.runtime import PipelineRuntime, observe_write_latency
from v10r.work.settle import (
    Counters,
    Settlement,
    count,
    dead_letter_unreadable,
    log_dead_letters,
    plan_settlement,
)

log = logging.getLogger("v10r.work")

DEFAULT_IN_FLIGHT = 2  # batches one loop processes at once

WorkerStats = Counters  # the one counters type, under the name earlier releases used


class PipelineWorker:
    """One consumer loop for one pipeline; run several for concurrency."""

    def __init__(self, runtime: PipelineRuntime, queue: Queue, *, batch_size: int = 64,
                 timeout: float = 1.0, in_flight: int = DEFAULT_IN_FLIGHT,
                 backoff: Backoff = OUTAGE_BACKOFF) -> None:
        self.runtime = runtime
        self.queue = queue
        self.pipeline = runtime.pipeline.name
        self.batch_size = batch_size
        self.timeout = timeout
        self.in_flight = max(1, in_flight)
        self.backoff = backoff
        self._retry_streak = 0  # consecutive batches with retried tasks

    @property
    def stats(self) -> Counters:
        return self.runtime.counters

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set; the batches in hand are finished first."""
        slots = asyncio.Semaphore(self.in_flight)
        batches: set[asyncio.Task[None]] = set()
        failures = 0
        try:
            while not stop.is_set():
                await self.runtime.ready(stop)  # paused while a breaker is open
                await slots.acquire()
                deliveries: list[Delivery] = []
                try:
                    if not stop.is_set():
                        deliveries = await self.queue.consume(self.pipeline, self.batch_size,
                                                              self.timeout)
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - every broker client has its own errors
                    failures += 1
                    await self._pause("consume", exc, failures, stop)
                if not deliveries:
                    slots.release()
                    continue
                job = asyncio.create_task(self.handle(deliveries, stop))
                batches.add(job)
                job.add_done_callback(lambda done: (batches.discard(done), slots.release()))
        finally:
            if batches:
                await asyncio.gather(*batches, return_exceptions=True)

    async def handle(self, deliveries: Sequence[Delivery], stop: asyncio.Event) -> None:
        """Process one batch and settle every delivery of it."""
        unreadable = [d for d in deliveries if d.task is None]
        readable = [d for d in deliveries if d.task is not None]
        if unreadable and not await self._unreadable(unreadable, stop):
            return
        if not readable:
            return
        tasks = [d.task for d in readable if d.task is not None]
        outcome = await self.runtime.run(tasks, stop)
        if outcome is None:
            return  # stopped during an outage: left unacked, the broker redelivers
        plan = plan_settlement(outcome, [d.attempts for d in readable],
                               self.runtime.pipeline.queue.max_attempts)
        try:
            await self._apply(readable, plan)
        except Exception as exc:  # noqa: BLE001 - unsettled ones are redelivered
            await self._pause("settle", exc, 1, stop)
            return
        self.stats.add(count(outcome, plan))
        observe_write_latency(self.pipeline, outcome, [d.enqueued_at for d in readable])
        for reason, indices in plan.dead.items():
            log_dead_letters(self.pipeline, [tasks[i].id for i in indices], reason)
        if plan.retry:
            self._retry_streak += 1  # give a failing service a moment before the next try
            await _wait(stop, self.backoff.delay(self._retry_streak - 1))
        else:
            self._retry_streak = 0

    async def _apply(self, deliveries: Sequence[Delivery], plan: Settlement) -> None:
        if plan.done:
            await self.queue.ack(self.pipeline, [deliveries[i] for i in plan.done])
        for error, indices in plan.retry.items():
            await self.queue.retry(self.pipeline, [deliveries[i] for i in indices], error)
        for reason, indices in plan.dead.items():
            await self.queue.dead_letter(self.pipeline, [deliveries[i] for i in indices], reason)

    async def _unreadable(self, deliveries: Sequence[Delivery], stop: asyncio.Event) -> bool:
        async def send(group: list[Delivery], error: str) -> None:
            await self.queue.dead_letter(self.pipeline, group, error)

        try:
            self.stats.dead_lettered += await dead_letter_unreadable(self.pipeline, deliveries,
                                                                     send)
        except Exception as exc:  # noqa: BLE001 - redelivered, then tried again
            await self._pause("dead-letter", exc, 1, stop)
            return False
        return True

    async def _pause(self, step: str, exc: BaseException, attempt: int,
                     stop: asyncio.Event) -> None:
        self.stats.errors += 1
        delay = self.backoff.delay(attempt - 1)
        log.warning("pipeline %s: %s failed (%s); retrying in %.1fs", self.pipeline, step,
                    mask_text(str(exc) or type(exc).__name__), delay)
        await _wait(stop, delay)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when stopping."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass

