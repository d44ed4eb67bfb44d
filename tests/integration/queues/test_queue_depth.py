"""`depth()` of every adapter against the real brokers: what `status` and `/metrics`
show as tasks waiting, in flight, and workers seen."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fixtures.queues import QueueFactory
from tests.integration.queues.helpers import collect, make_tasks
from v10r.queues.base import Depth

pytestmark = pytest.mark.integration


async def depth_until(queue, pipeline: str, check, timeout: float = 20.0) -> Depth:
    """Brokers report some numbers asynchronously (Kafka commits, RabbitMQ counters)."""
    deadline = time.monotonic() + timeout
    while True:
        depth = await queue.depth(pipeline)
        if check(depth) or time.monotonic() > deadline:
            return depth
        await asyncio.sleep(0.2)


async def test_depth_follows_publish_delivery_and_ack(queue_factory: QueueFactory) -> None:
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    empty = await queue.depth(pipeline)
    assert empty.waiting == 0

    for task in make_tasks(pipeline, range(7)):  # one message each: brokers count messages
        await queue.publish(pipeline, [task])
    published = await depth_until(queue, pipeline, lambda d: d.waiting == 7)
    assert published.waiting == 7

    deliveries = await collect(queue, pipeline, 3, max_batch=3)
    assert len(deliveries) == 3
    if queue_factory.kind in ("memory", "redis"):  # these tell delivered from waiting
        held = await queue.depth(pipeline)
        assert (held.waiting, held.in_flight) == (4, 3)
    if queue_factory.kind != "memory":  # a broker sees its consumers
        seen = await depth_until(queue, pipeline, lambda d: bool(d.consumers))
        assert seen.consumers and seen.consumers >= 1

    await queue.ack(pipeline, deliveries)
    rest = await collect(queue, pipeline, 4)
    await queue.ack(pipeline, rest)
    drained = await depth_until(queue, pipeline, lambda d: d.waiting == 0 and not d.in_flight)
    assert drained.waiting == 0 and not drained.in_flight


async def test_depth_of_a_pipeline_never_published_to_is_zero_not_an_error(
        queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    other = queue_factory.pipeline + "_none"
    if queue_factory.kind == "rabbitmq":  # a queue that was never declared does not exist
        with pytest.raises(Exception):  # noqa: B017 - aiormq's ChannelNotFoundEntity
            await queue.depth(other)
        return
    assert (await queue.depth(other)).waiting == 0
