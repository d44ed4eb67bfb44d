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
    assert not publishing.done() and queue.broker.pending("p") == 10
    seen = []
    while len(seen) < 25:
        batch = await queue.consume("p", 4, 1.0)
        await queue.ack("p", batch)
        seen += [d.task.id for d in batch]
        assert queue.broker.pending("p") <= 10
    await asyncio.wait_for(publishing, 1.0)
    assert seen == list(range(25))


def test_task_origin_survives_the_wire_and_old_messages_read_as_live() -> None:
    task = Task("p", "db", "public.t", 7, "body", "body_embedding", origin="catchup")
    assert Task.from_json(task.to_json()) == task
    old = b'{"v":1,"pipeline":"p","database":"db","table":"public.t","id":7,' \
          b'"text_column":"body","embedding_column":"body_embedding"}'
    assert Task.from_json(old).origin == "live"
    assert task.key == Task("p", "db", "public.t", 7, "body", "body_embedding").key


async def test_live_tasks_are_taken_before_a_backlog_of_catch_up_tasks() -> None:
    queue = MemoryQueue(MemoryBroker(max_pending=50))
    backlog = [Task("p", "db", "public.t", i, "body", "body_embedding", origin="catchup")
               for i in range(60)]
    filling = asyncio.create_task(queue.publish("p", backlog))  # waits: its lane is full
    await asyncio.sleep(0.02)
    live = [Task("p", "db", "public.t", i, "body", "body_embedding") for i in (1000, 1001)]
    await asyncio.wait_for(queue.publish("p", live), 1.0)  # a full catch-up lane holds no live task

    first = await queue.consume("p", 5, 1.0)
    assert [d.task.id for d in first[:2]] == [1000, 1001]
    await queue.ack("p", first)
    while not filling.done() or queue.broker.pending("p"):
        await queue.ack("p", await queue.consume("p", 50, 1.0))
    await filling
