"""Kafka keeps one row's tasks in publish order, because the row key picks the partition."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest

from tests.fixtures.queues import KafkaQueue
from tests.integration.queues.helpers import collect
from v10r.embedded.kafka import EmbeddedKafka
from v10r.tasks import Task

pytestmark = pytest.mark.integration


async def test_tasks_of_one_row_arrive_in_publish_order(kafka_broker: EmbeddedKafka) -> None:
    pipeline = f"t_order_{uuid.uuid4().hex[:8]}"
    queue = KafkaQueue(kafka_broker.bootstrap, pipelines=[pipeline], partitions=4,
                       group_id=f"g-{pipeline}",
                       session_timeout_ms=6000, heartbeat_interval_ms=1000)
    await queue.start()
    try:
        # 300 tasks over 6 rows; the sequence number rides in `database`, outside the key.
        tasks = [Task(pipeline, f"seq{n}", "public.docs", n % 6, "body", "body_embedding")
                 for n in range(300)]
        for start in range(0, 300, 50):
            await queue.publish(pipeline, tasks[start:start + 50])

        deliveries = await collect(queue, pipeline, 300)
        await queue.ack(pipeline, deliveries)
    finally:
        await queue.delete_topics([pipeline])
        await queue.close()

    order: dict[int, list[int]] = defaultdict(list)
    partitions: dict[int, set[int]] = defaultdict(set)
    for d in deliveries:
        order[d.task.id].append(int(d.task.database.removeprefix("seq")))
        partitions[d.task.id].add(d.handle[0].partition)
    assert len(deliveries) == 300
    assert all(seqs == sorted(seqs) for seqs in order.values())
    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) > 1
