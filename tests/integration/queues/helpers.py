"""Small readers shared by the queue tests: tasks to publish, and bounded collection."""

from __future__ import annotations

import time

from v10r.queues.base import Delivery, Queue
from v10r.tasks import Task


def make_tasks(pipeline: str, ids: range | list[int], database: str = "app") -> list[Task]:
    return [Task(pipeline=pipeline, database=database, table="public.docs", id=i,
                 text_column="body", embedding_column="body_embedding") for i in ids]


async def collect(queue: Queue, pipeline: str, count: int, *, timeout: float = 30.0,
                  max_batch: int = 100) -> list[Delivery]:
    """Consume until `count` deliveries arrived; a Kafka group join takes seconds."""
    deadline = time.monotonic() + timeout
    got: list[Delivery] = []
    while len(got) < count and time.monotonic() < deadline:
        got += await queue.consume(pipeline, max_batch=max_batch, timeout=1.0)
    return got
