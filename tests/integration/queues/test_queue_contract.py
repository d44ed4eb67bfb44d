"""What every queue adapter promises a worker, checked against the real brokers."""

from __future__ import annotations

import pytest

from tests.fixtures.queues import QueueFactory
from tests.integration.queues.helpers import collect, make_tasks

pytestmark = pytest.mark.integration


async def test_a_published_task_arrives_unchanged_and_once_acked_is_gone(
        queue_factory: QueueFactory) -> None:
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    tasks = make_tasks(pipeline, range(3)) + [
        make_tasks(pipeline, [0])[0].__class__(pipeline, "app", "s.t", {"a": 1, "b": "x"},
                                               "body", "body_embedding")]
    await queue.publish(pipeline, tasks)

    deliveries = await collect(queue, pipeline, len(tasks))

    assert sorted(d.task.to_json() for d in deliveries) == sorted(t.to_json() for t in tasks)
    assert {d.attempts for d in deliveries} == {1}
    await queue.ack(pipeline, deliveries)
    assert await queue.consume(pipeline, max_batch=10, timeout=0.5) == []


async def test_a_batch_never_exceeds_max_batch(queue_factory: QueueFactory) -> None:
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    await queue.publish(pipeline, make_tasks(pipeline, range(10)))

    sizes: list[int] = []
    while sum(sizes) < 10:  # a worker settles each batch before asking for the next
        batch = await collect(queue, pipeline, 1, max_batch=4)
        assert batch, f"only {sum(sizes)} of 10 tasks arrived"
        sizes.append(len(batch))
        await queue.ack(pipeline, batch)

    assert sum(sizes) == 10 and max(sizes) <= 4


async def test_consume_returns_empty_when_nothing_arrives_in_time(
        queue_factory: QueueFactory) -> None:
    queue = await queue_factory()
    assert await queue.consume(queue_factory.pipeline, max_batch=10, timeout=0.3) == []


async def test_tasks_of_a_consumer_that_dies_before_acking_go_to_another(
        queue_factory: QueueFactory) -> None:
    pipeline = queue_factory.pipeline
    crashed = await queue_factory()
    tasks = make_tasks(pipeline, range(2))
    await crashed.publish(pipeline, tasks)
    assert len(await collect(crashed, pipeline, 2)) == 2

    await crashed.close()  # gone without acking
    survivor = await queue_factory()
    redelivered = await collect(survivor, pipeline, 2)

    assert sorted(d.task.to_json() for d in redelivered) == sorted(t.to_json() for t in tasks)
    await survivor.ack(pipeline, redelivered)


async def test_retry_counts_attempts_then_dead_letters_and_replay_requeues(
        queue_factory: QueueFactory) -> None:
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    [task] = make_tasks(pipeline, [7])
    await queue.publish(pipeline, [task])

    [first] = await collect(queue, pipeline, 1)
    await queue.retry(pipeline, [first], "embedding server said 503")
    [second] = await collect(queue, pipeline, 1)
    await queue.dead_letter(pipeline, [second], "embedding server said 503 again")

    assert (first.attempts, second.attempts) == (1, 2)
    assert await queue.consume(pipeline, max_batch=10, timeout=0.5) == []
    [dead] = await queue.dead_letters(pipeline)
    assert (dead.task, dead.error, dead.attempts) == (task, "embedding server said 503 again", 2)
    assert dead.id and dead.failed_at > 0

    assert await queue.replay(pipeline) == 1
    assert await queue.dead_letters(pipeline) == []
    [replayed] = await collect(queue, pipeline, 1)
    assert (replayed.task, replayed.attempts) == (task, 1)
    await queue.ack(pipeline, [replayed])


async def test_replay_by_id_requeues_only_the_chosen_dead_letters(
        queue_factory: QueueFactory) -> None:
    # Eight letters on fewer partitions: chosen ones sit before, between and after others.
    queue, pipeline = await queue_factory(), queue_factory.pipeline
    await queue.publish(pipeline, make_tasks(pipeline, range(8)))
    deliveries = await collect(queue, pipeline, 8)
    await queue.dead_letter(pipeline, deliveries, "row has no text")
    letters = sorted(await queue.dead_letters(pipeline), key=lambda d: d.task.id)
    assert [d.task.id for d in letters] == list(range(8))

    chosen = [letters[i].id for i in (1, 4, 6)]
    assert await queue.replay(pipeline, chosen) == 3

    replayed = await collect(queue, pipeline, 3)
    assert sorted(d.task.id for d in replayed) == [1, 4, 6]
    await queue.ack(pipeline, replayed)
    left = sorted(d.task.id for d in await queue.dead_letters(pipeline))
    assert left == [0, 2, 3, 5, 7]
    assert await queue.replay(pipeline, chosen) == 0  # the old ids are gone, not replayed twice
    assert sorted(d.task.id for d in await queue.dead_letters(pipeline)) == left
