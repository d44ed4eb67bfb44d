"""Build the queue adapter a spec asks for, with its URL resolved at the last moment."""

from __future__ import annotations

import os
from collections.abc import Sequence

from v10r.errors import QueueError
from v10r.queues.base import Queue
from v10r.redact import mask_url
from v10r.spec import model
from v10r.spec.env import expand

DEFAULT_URLS = {
    "redis": ("V10R_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "kafka": ("V10R_KAFKA_URL", "kafka://127.0.0.1:9092"),
    "rabbitmq": ("V10R_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}


def queue_url(queue_spec: model.Queue) -> str:
    """The spec's `url` with `${ENV}` expanded, else the kind's environment default."""
    if queue_spec.url:
        return expand(queue_spec.url, what="queue.url")
    variable, default = DEFAULT_URLS[queue_spec.kind]
    return os.environ.get(variable) or default


def kafka_bootstrap(url: str) -> str:
    """`kafka://h1:9092,h2:9092` → `h1:9092,h2:9092`; a bare `host:port` list passes too."""
    servers = url.removeprefix("kafka://").rstrip("/")
    hosts = [s.strip() for s in servers.split(",") if s.strip()]
    if not hosts or any("/" in h or "@" in h or ":" not in h for h in hosts):
        raise QueueError(f"bad Kafka URL {mask_url(url)}",
                         hint="use kafka://host:port[,host:port] (credentials are not supported)")
    return ",".join(hosts)


def create_queue(queue_spec: model.Queue, *, pipelines: Sequence[str]) -> Queue:
    """The adapter for `queue_spec.kind`; call `start()` on it to connect."""
    match queue_spec.kind:
        case "memory":
            from v10r.queues.memory import MemoryQueue

            return MemoryQueue()
        case "redis":
            from v10r.queues.redis import RedisQueue

            return RedisQueue(queue_url(queue_spec), pipelines=pipelines)
        case "rabbitmq":
            from v10r.queues.rabbitmq import RabbitMQQueue

            return RabbitMQQueue(queue_url(queue_spec), pipelines=pipelines)
        case "kafka":
            from v10r.queues.kafka import KafkaQueue

            url = queue_url(queue_spec)
            return KafkaQueue(kafka_bootstrap(url), url=url, pipelines=pipelines,
                              partitions=queue_spec.partitions)
    raise QueueError(f"unknown queue kind {queue_spec.kind!r}")
