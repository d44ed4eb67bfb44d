"""The in-process queue: bounded, so a fast producer cannot hold a whole table in memory."""

from __future__ import annotations

import asyncio

import pytest

from v10r.queues.memory import MemoryBroker, MemoryQueue
from v10r.tasks import Task

pytestmark = pytest.mark.unit


async def test_memory_publish_waits_for_room_instead_of_growing_without_bound() -> None:
    queue = MemoryQueue(MemoryBroker(max_pending=10))
    tasks = [Task("p", "db", "public.t", i, "body", "body_embedding") for i in range(25)]
    publishing = asyncio.create_task(queue.publish("p", tasks))
    await asyncio.sleep(0.05)
    assert not publishing.done() and queue.broker.queue("p").qsize() == 10
    seen = []
    while len(seen) < 25:
        batch = await queue.consume("p", 4, 1.0)
        await queue.ack("p", batch)
        seen += [d.task.id for d in batch]
        assert queue.broker.queue("p").qsize() <= 10
    await asyncio.wait_for(publishing, 1.0)
    assert seen == list(range(25))


def test_task_origin_survives_the_wire_and_old_messages_read_as_live() -> None:
    task = Task("p", "db", "public.t", 7, "body", "body_embedding", origin="catchup")
    assert Task.from_json(task.to_json()) == task
    old = b'{"v":1,"pipeline":"p","database":"db","table":"public.t","id":7,' \
          b'"text_column":"body","embedding_column":"body_embedding"}'
    assert Task.from_json(old).origin == "live"
    assert task.key == Task("p", "db", "public.t", 7, "body", "body_embedding").key
