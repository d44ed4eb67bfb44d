"""A message carries many rows, but every row is settled on its own, on every broker:
a retried row comes back alone, a dead letter names its row, and a message is gone only
once all its rows are settled; a consumer that dies mid-message loses no row."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fixtures.queues import QueueFactory
from tests.integration.queues.helpers import collect, make_tasks

pytestmark = pytest.mark.integration


async def test_rows_of_one_message_are_retried_dead_lettered_and_acked_alone(
        queue_factory: QueueFactory) -> None:
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    await queue.publish(pipeline, make_tasks(pipeline, range(250)))

    seen, again = [], []
    while len({d.task.id for d in seen}) < 250 or not again:  # type: ignore[union-attr]
        batch = await collect(queue, pipeline, 1, max_batch=64)
        assert batch and len(batch) <= 64, f"{len(seen)} of 250 rows arrived"
        for d in batch:
            match (d.task.id, d.attempts):  # type: ignore[union-attr]
                case (5, 1):
                    await queue.retry(pipeline, [d], "provider said 503")
                case (6, _):
                    await queue.dead_letter(pipeline, [d], "input rejected")
                case (5, _):
                    again.append(d)
                    await queue.ack(pipeline, [d])
                case _:
                    seen.append(d)
                    await queue.ack(pipeline, [d])
        seen += [d for d in batch if d.task.id in (5, 6) and d.attempts == 1]  # type: ignore[union-attr]

    assert sorted(d.task.id for d in seen) == list(range(250))  # type: ignore[union-attr]
    assert [d.attempts for d in again] == [2]
    assert await queue.consume(pipeline, max_batch=500, timeout=0.5) == []
    [letter] = await queue.dead_letters(pipeline)
    assert letter.task is not None and letter.task.id == 6 and letter.error == "input rejected"


async def test_a_consumer_that_dies_mid_message_leaves_every_unsettled_row_to_another(
        queue_factory: QueueFactory) -> None:
    pipeline = queue_factory.pipeline
    crashed = await queue_factory()
    await crashed.publish(pipeline, make_tasks(pipeline, range(100)))  # one message
    first = await collect(crashed, pipeline, 30, max_batch=30)
    await crashed.ack(pipeline, first)  # the message's other 70 rows are never settled
    await crashed.close()

    survivor = await queue_factory()
    redelivered = await collect(survivor, pipeline, 100, max_batch=100)
    ids = {d.task.id for d in redelivered}  # type: ignore[union-attr]
    assert ids >= set(range(100)) - {d.task.id for d in first}  # type: ignore[union-attr]
    await survivor.ack(pipeline, redelivered)
    assert await survivor.consume(pipeline, max_batch=500, timeout=0.5) == []


async def test_a_row_stays_on_one_kafka_partition_whatever_it_is_batched_with(
        queue_factory: QueueFactory) -> None:
    if queue_factory.kind != "kafka":
        pytest.skip("partitions are Kafka's")
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    for ids in (range(40), [7], range(5, 200, 3), [7, 8]):
        await queue.publish(pipeline, make_tasks(pipeline, ids))
    total = 40 + 1 + len(range(5, 200, 3)) + 2

    deliveries = await collect(queue, pipeline, total, max_batch=500)
    partitions: dict[int, set[int]] = {}
    for d in deliveries:
        partitions.setdefault(d.task.id, set()).add(d.handle[0].partition)  # type: ignore[union-attr]
    assert len(deliveries) == total
    assert all(len(found) == 1 for found in partitions.values())
    assert len({p for found in partitions.values() for p in found}) > 1  # rows are spread
    await queue.ack(pipeline, deliveries)


async def test_live_tasks_are_taken_before_a_backlog_of_backfill_tasks(
        queue_factory: QueueFactory) -> None:
    if queue_factory.kind not in ("memory", "redis"):
        pytest.skip("RabbitMQ and Kafka deliver in publish order (see docs/operations.md)")
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    backlog = [replace(t, origin="catchup") for t in make_tasks(pipeline, range(500))]
    await queue.publish(pipeline, backlog)
    await queue.publish(pipeline, make_tasks(pipeline, [1000, 1001]))

    first = await collect(queue, pipeline, 1, max_batch=64)
    assert [d.task.id for d in first[:2]] == [1000, 1001]  # type: ignore[union-attr]
    rest = first[2:] + await collect(queue, pipeline, 500 - len(first[2:]), max_batch=500)
    assert sorted(d.task.id for d in rest) == list(range(500))  # type: ignore[union-attr]
    assert {d.task.origin for d in rest} == {"catchup"}  # type: ignore[union-attr]
    await queue.ack(pipeline, first[:2] + rest)
    assert await queue.consume(pipeline, max_batch=10, timeout=0.3) == []
