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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from v10r.queues.base import DeadLetter, Delivery, Depth
from v10r.tasks import ORIGINS, Task

DEFAULT_MAX_PENDING = 10_000


@dataclass
class Lane:
    """One FIFO of (task, attempts), and an event set whenever it has room."""

    items: deque[tuple[Task, int]] = field(default_factory=deque)
    room: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class MemoryBroker:
    """Shared state: per pipeline a live and a catch-up FIFO, and the dead letters.

    Consumers take live tasks first, so a change made during a backfill of millions of
    rows is not queued behind it. Publishing waits while the task's lane has
    `max_pending` tasks queued, so a producer faster than the workers (a catch-up scan
    of a large table) is slowed down rather than holding the whole table in memory;
    a full catch-up lane never holds up live tasks. Retries and give-backs never wait.
    """

    max_pending: int = DEFAULT_MAX_PENDING
    lanes: dict[tuple[str, str], Lane] = field(default_factory=dict)
    dead: dict[str, list[DeadLetter]] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _arrived: dict[str, asyncio.Event] = field(default_factory=dict, repr=False)

    def lane(self, pipeline: str, origin: str) -> Lane:
        return self.lanes.setdefault((pipeline, origin), Lane())

    def pending(self, pipeline: str) -> int:
        return sum(len(self.lane(pipeline, origin).items) for origin in ORIGINS)

    def put(self, pipeline: str, task: Task, attempts: int) -> None:
        self.lane(pipeline, task.origin).items.append((task, attempts))
        self._arrived.setdefault(pipeline, asyncio.Event()).set()

    async def wait_for_space(self, pipeline: str, origin: str) -> None:
        lane = self.lane(pipeline, origin)
        while len(lane.items) >= self.max_pending:
            lane.room.clear()
            await lane.room.wait()

    def take(self, pipeline: str, count: int) -> list[tuple[Task, int]]:
        """Up to `count` tasks, live ones first; wakes publishers waiting for room."""
        taken: list[tuple[Task, int]] = []
        for origin in ORIGINS:
            lane = self.lane(pipeline, origin)
            while lane.items and len(taken) < count:
                taken.append(lane.items.popleft())
            if len(lane.items) < self.max_pending:
                lane.room.set()
        if not self.pending(pipeline):
            self._arrived.setdefault(pipeline, asyncio.Event()).clear()
        return taken

    async def arrival(self, pipeline: str, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._arrived.setdefault(pipeline, asyncio.Event()).wait(),
                                   timeout)
        except TimeoutError:
            return False
        return True


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
            self.broker.put(pipeline, task, attempts)
        self._in_flight.clear()

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        broker = self.broker
        for task in tasks:
            if len(broker.lane(pipeline, task.origin).items) >= broker.max_pending:
                await broker.wait_for_space(pipeline, task.origin)
            broker.put(pipeline, task, 1)

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        if not self.broker.pending(pipeline) and not await self.broker.arrival(pipeline, timeout):
            return []
        taken = self.broker.take(pipeline, max_batch)
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
                self.broker.put(pipeline, delivery.task, delivery.attempts + 1)

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
        return Depth(self.broker.pending(pipeline), in_flight)

    async def dead_letters(self, pipeline: str, limit: int = 100) -> list[DeadLetter]:
        return list(self.broker.dead.get(pipeline, [])[:limit])

    async def replay(self, pipeline: str, ids: Sequence[str] | None = None) -> int:
        dead = self.broker.dead.get(pipeline, [])
        chosen = [d for d in dead if ids is None or d.id in ids]
        chosen_ids = {d.id for d in chosen}
        self.broker.dead[pipeline] = [d for d in dead if d.id not in chosen_ids]
        await self.publish(pipeline, [d.task for d in chosen if d.task is not None])
        return len(chosen)
