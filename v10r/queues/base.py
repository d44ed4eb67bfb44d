"""The queue interface every adapter implements: publish, consume, ack, retry, dead-letter.

Delivery is at-least-once everywhere: a task is acked only after its vector is written,
and the write is idempotent, so a redelivery costs one SELECT and no embedding call.
A broker message carries many rows (`v10r.tasks`); each row is its own `Delivery`, and
the message is acked on the broker once its last row is settled (`settled_messages`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from v10r.errors import QueueError
from v10r.tasks import Task, read_message


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
    rows: MessageRows | None = field(default=None, repr=False)  # the message's unsettled rows
    settled: bool = field(default=False, repr=False)

    @property
    def body(self) -> bytes:
        """What a dead letter keeps: the task as JSON, or the unreadable bytes."""
        return self.task.to_json() if self.task is not None else self.raw


@dataclass(eq=False, slots=True)
class MessageRows:
    """How many rows of one broker message are not settled yet."""

    left: int


def read_deliveries(raw: bytes, attempts: int, handle: Any) -> list[Delivery]:
    """One delivery per row of a message body; an unreadable body is one delivery
    carrying its error instead."""
    raw = bytes(raw)
    try:
        tasks = read_message(raw)
    except QueueError as exc:
        return [Delivery(None, attempts, handle, raw, exc.message, rows=MessageRows(1))]
    rows = MessageRows(len(tasks))
    return [Delivery(task, attempts, handle, raw, None, rows=rows) for task in tasks]


def settled_messages(deliveries: Sequence[Delivery]) -> list[Any]:
    """Mark rows settled; the handles of the messages whose last row this was, once each.

    Settling a row twice is a no-op, so a message is never acked twice or too early.
    """
    handles = []
    for delivery in deliveries:
        if delivery.settled:
            continue
        delivery.settled = True
        if delivery.rows is None:
            handles.append(delivery.handle)
            continue
        delivery.rows.left -= 1
        if delivery.rows.left == 0:
            handles.append(delivery.handle)
    return handles


@dataclass
class Held:
    """Rows read from the broker beyond a batch's `max_batch`, handed out next.

    A message may hold more rows than a batch takes; its other rows wait here, still
    unacked on the broker, so a consumer that stops leaves them to be redelivered.
    """

    rows: dict[str, list[Delivery]] = field(default_factory=dict)

    async def serve(self, pipeline: str, max_batch: int,
                    read: Callable[[], Awaitable[list[Delivery]]]) -> list[Delivery]:
        """Up to `max_batch` rows: those held from a message read before, else `read()`'s
        first `max_batch`, holding the rest for the next call."""
        held = self.rows.get(pipeline, [])
        if held:
            taken, self.rows[pipeline] = held[:max_batch], held[max_batch:]
            return taken
        deliveries = await read()
        self.rows.setdefault(pipeline, []).extend(deliveries[max_batch:])
        return deliveries[:max_batch]


def readable(raw: bytes) -> bool:
    try:
        read_message(raw)
    except QueueError:
        return False
    return True


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
    """How much a pipeline's queue holds, for `status` and metrics (None: not known).

    Brokers count messages, and a message carries up to `MAX_MESSAGE_ROWS` rows; the
    memory queue counts tasks. The rows still to embed are `v10r status`'s counts."""

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
