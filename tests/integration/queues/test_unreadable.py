"""Messages that are not a task this release reads (bad JSON, another version, missing
fields, foreign shapes) reach the worker as unreadable deliveries, go to the dead
letters with their error, and never stay pending, on every broker."""

from __future__ import annotations

import aio_pika
import pytest
from aiokafka import AIOKafkaProducer

from tests.fixtures.queues import QueueFactory
from tests.integration.queues.helpers import collect, make_tasks
from v10r.queues.base import Queue
from v10r.queues.kafka import KafkaQueue, task_topic
from v10r.queues.rabbitmq import RabbitMQQueue, task_queue
from v10r.queues.redis import RedisQueue, task_stream

pytestmark = pytest.mark.integration

FOREIGN = [b'{"v": 3, "pipeline": "p", "id": 1}', b'{"v": 2, "pipeline": "p", "ids": []}',
           b"{not json", b'{"v": 1, "pipeline": "p"}',
           b"", b"\xff\xfe\x00", b"[1, 2, 3]", b"null"]


async def publish_raw(queue: Queue, pipeline: str, bodies: list[bytes]) -> None:
    """Put bodies on the broker as another client would, bypassing `Task`."""
    match queue:
        case RedisQueue():
            for body in bodies:
                await queue.redis.xadd(task_stream(pipeline), {"task": body, "attempts": "x"})
            await queue.redis.xadd(task_stream(pipeline), {"other": b"field"})  # no task field
        case RabbitMQQueue():
            for body in bodies:
                await queue.publisher.default_exchange.publish(
                    aio_pika.Message(body, headers={"attempts": "many"}),
                    routing_key=task_queue(pipeline))
        case KafkaQueue():
            producer = AIOKafkaProducer(bootstrap_servers=queue.bootstrap)
            await producer.start()
            try:
                for body in bodies:
                    await producer.send_and_wait(task_topic(pipeline), body,
                                                 headers=[("attempts", b"??")])
            finally:
                await producer.stop()


@pytest.fixture
def broker_factory(queue_factory: QueueFactory) -> QueueFactory:
    if queue_factory.kind == "memory":
        pytest.skip("an in-process queue carries Task objects: nothing foreign reaches it")
    return queue_factory


async def test_foreign_messages_are_delivered_unreadable_dead_lettered_and_not_pending(
        broker_factory: QueueFactory) -> None:
    queue, pipeline = await broker_factory(), broker_factory.pipeline
    valid = make_tasks(pipeline, [1, 2])
    await queue.publish(pipeline, valid[:1])
    await publish_raw(queue, pipeline, FOREIGN)
    await queue.publish(pipeline, valid[1:])
    expected = len(FOREIGN) + 2 + (1 if broker_factory.kind == "redis" else 0)

    deliveries = await collect(queue, pipeline, expected)

    assert len(deliveries) == expected
    good = [d for d in deliveries if d.task is not None]
    bad = [d for d in deliveries if d.task is None]
    assert sorted(d.task.id for d in good) == [1, 2]  # type: ignore[union-attr]
    assert all(d.error and d.attempts >= 1 for d in bad)
    assert any("version 3" in (d.error or "") for d in bad)
    await queue.ack(pipeline, good)
    await queue.dead_letter(pipeline, bad, "unreadable")

    assert await queue.consume(pipeline, max_batch=50, timeout=1.0) == []
    letters = await queue.dead_letters(pipeline, limit=100)
    assert len(letters) == len(bad) and all(d.task is None for d in letters)
    assert sorted(d.raw for d in letters) == sorted(d.raw for d in bad)
    assert await queue.replay(pipeline) == 0  # an unreadable message would only fail again
