"""Reaching a broker: a bounded first connection and one error shape for every adapter.

A broker that is down must fail `start()` quickly with the masked URL and a fix, never
hang a listener or worker at boot and never print the password in its URL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable
from typing import TypeVar

from v10r.errors import QueueError
from v10r.redact import mask_text, mask_url, url_password

T = TypeVar("T")

CONNECT_TIMEOUT = 10.0

HINTS = {
    "redis": "start Redis or set queue.url / V10R_REDIS_URL to a reachable redis:// URL",
    "rabbitmq": "start RabbitMQ or set queue.url / V10R_RABBITMQ_URL to a reachable amqp:// URL",
    "kafka": "start the Kafka broker or set queue.url / V10R_KAFKA_URL to kafka://host:port",
}


# Broker clients raise their own exception trees (not `OSError`) when a broker goes away
# or fails over; anything they raise is an outage to wait out, never a reason to exit.
_CLIENT_PACKAGES = frozenset({"redis", "aio_pika", "aiormq", "pamqp", "aiokafka", "kafka"})


def is_broker_outage(exc: BaseException) -> bool:
    """Whether `exc` (from publishing or consuming) means the broker is unreachable,
    failing over or refusing for now — as opposed to a bug, which must not be retried."""
    if isinstance(exc, (OSError, TimeoutError, QueueError)):
        return True
    return type(exc).__module__.partition(".")[0] in _CLIENT_PACKAGES


def consumer_name() -> str:
    """Unique per process and instance, so two workers never share pending entries."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def unreachable(kind: str, url: str, exc: BaseException | str) -> QueueError:
    reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
    reason = mask_text(reason, (url_password(url),))
    return QueueError(f"cannot reach the {kind} broker at {mask_url(url)}: {reason}",
                      hint=HINTS.get(kind))


async def within(kind: str, url: str, step: Awaitable[T], timeout: float = CONNECT_TIMEOUT) -> T:
    """Run a connect step with a deadline; any failure becomes a masked `QueueError`."""
    try:
        return await asyncio.wait_for(step, timeout)
    except QueueError:
        raise
    except (Exception, TimeoutError) as exc:  # noqa: BLE001 - every client raises its own tree
        raise unreachable(kind, url, exc) from None
