"""In-process queues for single-process dev mode and the demo.

`MemoryBroker` holds the queues and dead letters; each `MemoryQueue` is one client of
it and tracks what it has taken but not acked. Closing a client gives its unacked
tasks back, as a real broker does when a consumer's connection drops. Nothing survives
the process: use redis, rabbitmq or kafka when losing queued tasks on exit matters.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from v10r.queues.base import DeadLetter, Delivery, Depth
from v10r.tasks import Task

DEFAULT_MAX_PENDING = 10_000


@dataclass
class MemoryBroker:
    """Shared state: one FIFO of (task, attempts) per pipeline, and the dead letters.

    Publishing waits while a pipeline has `max_pending` tasks queued, so a producer
    faster than the workers (a catch-up scan of a large table) is slowed down rather
    than holding the whole table in memory. Retries and give-backs never wait.
    """

    max_pending: int = DEFAULT_MAX_PENDING
    queues: dict[str, asyncio.Queue[tuple[Task, int]]] = field(default_factory=dict)
    dead: dict[str, list[DeadLetter]] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _space: dict[str, asyncio.Event] = field(default_factory=dict, repr=False)

    def queue(self, pipeline: str) -> asyncio.Queue[tuple[Task, int]]:
        return self.queues.setdefault(pipeline, asyncio.Queue())

    async def wait_for_space(self, pipeline: str) -> None:
        queue = self.queue(pipeline)
        while queue.qsize() >= self.max_pending:
            space = self._space.setdefault(pipeline, asyncio.Event())
            space.clear()
            await space.wait()

    def taken(self, pipeline: str) -> None:
        """Called after tasks leave the queue: wake publishers waiting for room."""
        space = self._space.get(pipeline)
        if space is not None and self.queue(pipeline).qsize() < self.max_pending:
            space.set()


class MemoryQueue:
    kind = "memory"

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker or MemoryBroker()
        self._in_flight: dict[int, tuple[str, Task, int]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        """Give unacked tasks back to the broker, so another consumer gets them."""
        for pipeline, task, attempts in self._in_flight.values():
            self.broker.queue(pipeline).put_nowait((task, attempts))
        self._in_flight.clear()

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        queue = self.broker.queue(pipeline)
        for task in tasks:
            await self.broker.wait_for_space(pipeline)
            queue.put_nowait((task, 1))

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        queue = self.broker.queue(pipeline)
        taken: list[tuple[Task, int]] = []
        if queue.empty():
            try:
                taken.append(await asyncio.wait_for(queue.get(), timeout))
            except TimeoutError:
                return []
        while len(taken) < max_batch and not queue.empty():
            taken.append(queue.get_nowait())
        self.broker.taken(pipeline)
        return [self._hand_out(pipeline, task, attempts) for task, attempts in taken]

    def _hand_out(self, pipeline: str, task: Task, attempts: int) -> Delivery:
        handle = next(self.broker.ids)
        self._in_flight[handle] = (pipeline, task, attempts)
        return Delivery(task=task, attempts=attempts, handle=handle, raw=b"")

    async def ack(self, pipeline: str, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._in_flight.pop(delivery.handle, None)

    async def retry(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        for delivery in deliveries:
            if delivery.task is not None and self._taken(delivery):
                self.broker.queue(pipeline).put_nowait((delivery.task, delivery.attempts + 1))

    async def dead_letter(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        dead = self.broker.dead.setdefault(pipeline, [])
        for delivery in deliveries:
            if self._taken(delivery):
                dead.append(DeadLetter(task=delivery.task, error=error, attempts=delivery.attempts,
                                       failed_at=time.time(), id=str(next(self.broker.ids)),
                                       raw=delivery.body))

    def _taken(self, delivery: Delivery) -> bool:
        """Settle a delivery once: a second ack/retry of the same one is a no-op."""
        return self._in_flight.pop(delivery.handle, None) is not None

    async def depth(self, pipeline: str) -> Depth:
        in_flight = sum(1 for name, _, _ in self._in_flight.values() if name == pipeline)
        return Depth(self.broker.queue(pipeline).qsize(), in_flight)

    async def dead_letters(self, pipeline: str, limit: int = 100) -> list[DeadLetter]:
        return list(self.broker.dead.get(pipeline, [])[:limit])

    async def replay(self, pipeline: str, ids: Sequence[str] | None = None) -> int:
        dead = self.broker.dead.get(pipeline, [])
        chosen = [d for d in dead if ids is None or d.id in ids]
        chosen_ids = {d.id for d in chosen}
        self.broker.dead[pipeline] = [d for d in dead if d.id not in chosen_ids]
        await self.publish(pipeline, [d.task for d in chosen if d.task is not None])
        return len(chosen)
