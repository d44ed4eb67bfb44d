"""The queue interface every adapter implements: publish, consume, ack, retry, dead-letter.

Delivery is at-least-once everywhere: a task is acked only after its vector is written,
and the write is idempotent, so a redelivery costs one SELECT and no embedding call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from v10r.errors import QueueError
from v10r.tasks import Task


@dataclass(slots=True)
class Delivery:
    """A task handed to a worker, with what the adapter needs to ack or retry it.

    A message that is not a task this release can read (bad JSON, another version,
    missing fields) arrives with `task=None` and its `error`, so the worker dead-letters
    it instead of leaving it pending or dropping it.
    """

    task: Task | None
    attempts: int = 1  # 1 on first delivery
    handle: Any = field(default=None, repr=False)  # adapter-specific (stream id, tag, offset)
    raw: bytes = field(default=b"", repr=False)  # the message body as it arrived
    error: str | None = None  # why `task` is None
    enqueued_at: float | None = None  # unix time the broker stamped it (where it does)

    @property
    def body(self) -> bytes:
        """What a dead letter keeps: the task as JSON, or the unreadable bytes."""
        return self.task.to_json() if self.task is not None else self.raw


def read_delivery(raw: bytes, attempts: int, handle: Any) -> Delivery:
    """A delivery from a message body; an unreadable one carries its error instead."""
    try:
        return Delivery(Task.from_json(raw), attempts, handle, raw)
    except QueueError as exc:
        return Delivery(None, attempts, handle, bytes(raw), exc.message)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A task that kept failing, with the last error, for `v10r dlq list|replay`."""

    task: Task | None  # None: the message was not a readable task (`raw` holds it)
    error: str
    attempts: int
    failed_at: float  # unix time
    id: str = ""  # adapter-specific id, used by replay
    raw: bytes = field(default=b"", repr=False)


def read_dead_letter(raw: bytes, *, error: str, attempts: int, failed_at: float,
                     id: str) -> DeadLetter:
    try:
        task: Task | None = Task.from_json(raw)
    except QueueError:
        task = None
    return DeadLetter(task, error, attempts, failed_at, id, bytes(raw))


@dataclass(frozen=True, slots=True)
class Depth:
    """How much a pipeline's queue holds, for `status` and metrics (None: not known)."""

    waiting: int | None  # published, not yet delivered (Kafka: consumer-group lag)
    in_flight: int | None = None  # delivered to a worker, not yet acked
    consumers: int | None = None  # workers seen consuming


@runtime_checkable
class Queue(Protocol):
    kind: str

    async def start(self) -> None:
        """Connect, and create topics/streams/queues for the pipelines if needed."""

    async def close(self) -> None: ...

    async def publish(self, pipeline: str, tasks: Sequence[Task]) -> None:
        """Publish a batch durably; returns once the broker has accepted all of it."""

    async def consume(self, pipeline: str, max_batch: int, timeout: float) -> list[Delivery]:
        """Up to `max_batch` deliveries, waiting at most `timeout` seconds for the first."""

    async def ack(self, pipeline: str, deliveries: Sequence[Delivery]) -> None: ...

    async def retry(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None:
        """Give the tasks back for another attempt (attempts + 1); the runtime decides
        which tasks are out of attempts and dead-letters those itself."""

    async def dead_letter(self, pipeline: str, deliveries: Sequence[Delivery], error: str) -> None: ...

    async def dead_letters(self, pipeline: str, limit: int = 100) -> list[DeadLetter]: ...

    async def replay(self, pipeline: str, ids: Sequence[str] | None = None) -> int:
        """Re-publish dead letters (all, or those with `ids`) as fresh tasks; returns count.

        Unreadable dead letters are never replayed: they would only fail again."""
