"""Listener publishing cost: tasks/s of `Queue.publish` on each queue, in batches of
the listener's size (500 tasks per publish, what one flush of its dedup window sends).

Publishing is the listener's whole job once notifications are read, so this is the
rate one listener process can feed a queue at. Run it on two releases to compare.
Kafka runs on the embedded broker with one record per producer batch (see
`V10R_KAFKA_MAX_BATCH_BYTES`), as the listener does against it.

    .venv/bin/python bench/publish.py [--tasks 20000] [--queues memory,redis,rabbitmq,kafka]
                                      [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import _harness as h

from v10r.queues.base import Queue
from v10r.tasks import Task

BATCH = 500  # ListenerSettings.batch_size


def make_queue(kind: str, svc: h.Services, pipeline: str) -> Queue:
    from v10r.queues.kafka import KafkaQueue
    from v10r.queues.memory import MemoryBroker, MemoryQueue
    from v10r.queues.rabbitmq import RabbitMQQueue
    from v10r.queues.redis import RedisQueue

    match kind:
        case "memory":
            return MemoryQueue(MemoryBroker(max_pending=10**9))
        case "redis":
            return RedisQueue(h.REDIS_URL, pipelines=[pipeline])
        case "rabbitmq":
            return RabbitMQQueue(h.RABBITMQ_URL, pipelines=[pipeline])
    assert svc.kafka is not None
    os.environ.update(svc.kafka.client_env)
    return KafkaQueue(svc.kafka.bootstrap, pipelines=[pipeline])


async def publish_rate(kind: str, svc: h.Services, count: int) -> dict[str, Any]:
    pipeline = h.unique("pub")
    queue = make_queue(kind, svc, pipeline)
    await queue.start()
    tasks = [Task(pipeline, "bench", "public.docs", i, "body", "body_embedding")
             for i in range(count)]
    try:
        await queue.publish(pipeline, tasks[:BATCH])  # connections and topics warm
        started = time.perf_counter()
        for start in range(BATCH, count, BATCH):
            await queue.publish(pipeline, tasks[start:start + BATCH])
        seconds = time.perf_counter() - started
    finally:
        if hasattr(queue, "drop"):
            await queue.drop(pipeline)
        await queue.close()
    published = count - BATCH
    return {"queue": kind, "tasks": published, "seconds": round(seconds, 3),
            "tasks_per_s": round(published / seconds, 1),
            "us_per_task": round(seconds / published * 1e6, 1)}


async def run(args: Any) -> dict[str, Any]:
    count = args.tasks or (2_000 if args.quick else 20_000)
    kinds = h.parse_list(args.queues, h.QUEUES)
    async with h.services(kafka="kafka" in kinds) as svc:
        results = [await publish_rate(kind, svc, count) for kind in kinds]
    return {"benchmark": "publish", "quick": args.quick, "batch": BATCH,
            "machine": h.machine(), "results": results}


def render(report: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"listener publishing, {report['batch']} tasks per publish")
    for column in ("queue", "tasks", "seconds", "tasks/s", "µs per task"):
        table.add_column(column, justify="right")
    for r in report["results"]:
        table.add_row(r["queue"], f"{r['tasks']:,}", f"{r['seconds']:.2f}",
                      f"{r['tasks_per_s']:,.0f}", f"{r['us_per_task']:.1f}")
    Console(width=120).print(table)


def main() -> None:
    parser = h.base_parser(__doc__)
    parser.add_argument("--tasks", type=int, default=None, help="tasks (default 20000)")
    parser.add_argument("--queues", default=",".join(h.QUEUES))
    args = parser.parse_args()
    h.quiet_logs()
    h.emit(asyncio.run(run(args)), args.json, render)


if __name__ == "__main__":
    main()
