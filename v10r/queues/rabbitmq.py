"""RabbitMQ: one durable queue per pipeline, persistent messages, publisher confirms.

Layout (stable):
- tasks: queue `v10r.tasks.<pipeline>` (default exchange, routing key = queue name),
  body a task message (up to `MAX_MESSAGE_ROWS` rows, see `v10r.tasks`), header
  `attempts` (1 when fresh);
- dead letters: direct exchange `v10r.dlx` → queue `v10r.dlq.<pipeline>`, headers
  `error`, `attempts`, `failed_at`; each has a `message_id` used by replay. The tasks
  queue names the same exchange as its dead-letter target, so a message rejected by any
  other client lands there too.

Classic queues do not count redeliveries, so a retry republishes the row alone with
`attempts + 1` (confirmed); a message is acked once its last row is settled. A worker that dies leaves its unacked
messages to the broker, which hands them to another consumer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
    DeliveryMode,
)

from v10r.queues.base import (
    DeadLetter,
    Delivery,
    Depth,
    Held,
    read_dead_letter,
    read_deliveries,
    settled_messages,
)
from v10r.queues.connect import within
from v10r.tasks import Task, pack

DLX = "v10r.dlx"
PREFETCH_BATCHES = 2  # unacked batches a consumer may hold: the worker's in-flight batches
# Prefetch, in messages, is the in-flight rows / this: enough one-row messages (retries,
# a quiet listener) to fill a batch in few round trips, while full messages (up to
# `MAX_MESSAGE_ROWS` rows) do not let one consumer hold a backfill the others wait for.
PREFETCH_PER_BATCH = 8


def task_queue(pipeline: str) -> str:
    return f"v10r.tasks.{pipeline}"


def dlq_queue(pipeline: str) -> str:
    return f"v10r.dlq.{pipeline}"


@dataclass
class _Consumer:
    """A channel whose consumer callback fills `buffer`; prefetch bounds what it holds."""

    channel: AbstractChannel
    buffer: asyncio.Queue[AbstractIncomingMessage]


class RabbitMQQueue:
    kind = "rabbitmq"

    def __init__(self, url: str, *, pipelines: Sequence[str] = ()) -> None:
        self.url = url
        self.pipelines = tuple(pipelines)
        self._conn: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._declared: set[str] = set()
        self._consumers: dict[str, _Consumer] = {}
        self._consumer_lock = asyncio.Lock()  # concurrent first consumes share one consumer
        self._held = Held()

    def __repr__(self) -> str:
        return f"RabbitMQQueue(pipelines={self.pipelines!r})"  # never the URL

    async def start(self) -> None:
        self._conn = await within("rabbitmq", self.url, aio_pika.connect_robust(self.url, timeout=5))
        self._publisher = await self._conn.channel(publisher_confirms=True)
        for pipeline in self.pipelines:
            await self._declare(pipeline)

    async def close(self) -> None:
        """Closing the connection returns every unacked message to its queue."""
        self._held = Held()  # unacked on the broker: redelivered
        if self._conn is not None:
            await self._conn.close()
        self._conn, self._publisher = None, None
        self._consumers.clear()

    @property
    def publisher(self) -> AbstractChannel:
        if self._publisher is None:
            raise RuntimeError("RabbitMQQueue.start() was not called")
        return self._publisher

    async def _declare(self, pipeline: str) -> None:
        if pipeline in self._declared:
            return
        channel = self.publisher
        dlx = await channel.declare_exchange(DLX, aio_pika.ExchangeType.DIRECT, durable=True)
        dlq = await channel.declare_queue(dlq_queue(pipeline), durable=True)
        await dlq.bind(dlx, routing_key=dlq_queue(pipeline))
        await channel.declare_queue(task_queue(pipeline), durable=True, arguments={
            "x-dead-letter-exchange": DLX, "x-dead-letter-routing-key": dlq_queue(pipeline)})
        self._declared.add(pipeline)

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        await self._declare(pipeline)
        await self._send_bodies(pipeline, [(message.body, 1) for message in pack(tasks)])

    async def _send_bodies(self, pipeline: str, entries: Sequence[tuple[bytes, int]]) -> None:
        exchange = self.publisher.default_exchange
        await asyncio.gather(*(
            exchange.publish(aio_pika.Message(body, headers={"attempts": attempts},
                                              delivery_mode=DeliveryMode.PERSISTENT,
                                              content_type="application/json"),
                             routing_key=task_queue(pipeline))
            for body, attempts in entries))

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        """Up to `max_batch` rows: those held from a message read before, else new ones."""
        return await self._held.serve(pipeline, max_batch,
                                      lambda: self._read(pipeline, max_batch, timeout))

    async def _read(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        # at least a small batch's worth of one-row messages, so it can fill
        prefetch = max(min(max_batch, PREFETCH_PER_BATCH),
                       max_batch * PREFETCH_BATCHES // PREFETCH_PER_BATCH)
        consumer = await self._consumer(pipeline, prefetch)
        taken: list[Delivery] = []
        if consumer.buffer.empty():
            try:
                taken += _deliveries(await asyncio.wait_for(consumer.buffer.get(), timeout))
            except TimeoutError:
                return []
        while len(taken) < max_batch and not consumer.buffer.empty():
            taken += _deliveries(consumer.buffer.get_nowait())
        return taken

    async def _consumer(self, pipeline: str, prefetch: int) -> _Consumer:
        if pipeline in self._consumers:
            return self._consumers[pipeline]
        async with self._consumer_lock:
            if pipeline not in self._consumers:
                self._consumers[pipeline] = await self._open_consumer(pipeline, prefetch)
        return self._consumers[pipeline]

    async def _open_consumer(self, pipeline: str, prefetch: int) -> _Consumer:
        await self._declare(pipeline)
        if self._conn is None:
            raise RuntimeError("RabbitMQQueue.start() was not called")
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=prefetch)
        consumer = _Consumer(channel, asyncio.Queue())
        queue = await channel.get_queue(task_queue(pipeline), ensure=False)

        async def hold(message: AbstractIncomingMessage) -> None:
            consumer.buffer.put_nowait(message)

        await queue.consume(hold)
        return consumer

    async def ack(self, pipeline: str, deliveries: Sequence[Delivery]) -> None:
        await asyncio.gather(*(message.ack() for message in settled_messages(deliveries)))

    async def retry(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        await self._send_bodies(pipeline, [(d.body, d.attempts + 1) for d in deliveries])
        await self.ack(pipeline, deliveries)

    async def dead_letter(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        if not deliveries:
            return
        await self._declare(pipeline)
        exchange = await self.publisher.get_exchange(DLX, ensure=False)
        now = time.time()
        await asyncio.gather(*(
            exchange.publish(aio_pika.Message(
                d.body, message_id=uuid.uuid4().hex,
                headers={"error": error, "attempts": d.attempts, "failed_at": now},
                delivery_mode=DeliveryMode.PERSISTENT, content_type="application/json"),
                routing_key=dlq_queue(pipeline))
            for d in deliveries))
        await self.ack(pipeline, deliveries)

    async def depth(self, pipeline: str) -> Depth:
        """Ready messages and consumers; unacked ones are not told apart by AMQP."""
        channel = await self._conn.channel() if self._conn is not None else self.publisher
        try:
            queue = await channel.declare_queue(task_queue(pipeline), passive=True)
            result = queue.declaration_result
            return Depth(result.message_count, None, result.consumer_count)
        finally:
            await channel.close()

    async def dead_letters(self, pipeline: str, limit: int = 100) -> list[DeadLetter]:
        """Peek: take messages unacked on a private channel, then close it to put them back."""
        messages, channel = await self._browse(pipeline, limit)
        try:
            return [_dead_letter(message) for message in messages]
        finally:
            await channel.close()

    async def replay(self, pipeline: str, ids: Sequence[str] | None = None) -> int:
        messages, channel = await self._browse(pipeline, None)
        try:
            letters = [(m, _dead_letter(m)) for m in messages]
            chosen = [m for m, d in letters if d.task is not None and (ids is None or d.id in ids)]
            await self._send_bodies(pipeline, [(m.body, 1) for m in chosen])
            for message in chosen:
                await message.ack()
            return len(chosen)
        finally:
            await channel.close()  # the ones not chosen go back to the dead-letter queue

    async def _browse(self, pipeline: str,
                      limit: int | None) -> tuple[list[AbstractIncomingMessage], AbstractChannel]:
        await self._declare(pipeline)
        assert self._conn is not None
        channel = await self._conn.channel()
        queue = await channel.declare_queue(dlq_queue(pipeline), passive=True)
        count = queue.declaration_result.message_count
        messages = []
        for _ in range(count if limit is None else min(count, limit)):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            messages.append(message)
        return messages, channel

    async def drop(self, pipeline: str) -> None:
        """Delete the pipeline's queues (tests, and when a pipeline is removed)."""
        for name in (task_queue(pipeline), dlq_queue(pipeline)):
            await self.publisher.queue_delete(name)
        self._declared.discard(pipeline)


def _deliveries(message: AbstractIncomingMessage) -> list[Delivery]:
    attempts = int(_number(message.headers.get("attempts"), 1))
    return read_deliveries(message.body, attempts, message)


def _dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers
    error = headers.get("error", b"")
    error = error.decode() if isinstance(error, bytes) else str(error)
    return read_dead_letter(message.body, error=error,
                            attempts=int(_number(headers.get("attempts"), 1)),
                            failed_at=_number(headers.get("failed_at"), 0.0),
                            id=message.message_id or "")


def _number(value: object, default: float) -> float:
    """A header another client may have set to anything."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
