"""The task message: what the listener publishes and workers consume, on every queue.

A message carries the row keys of one pipeline (version 2: `ids`, many rows; version 1,
still read: `id`, one row). Versioned (`v`) so that a worker can refuse, rather than
misread, a message from a newer listener. JSON on the wire. Rows are packed into
messages by group (`row_group`): on Kafka the group is the partition, so all tasks of
one row stay in order on one partition. Settling stays per row: a row that fails is
re-published alone, and a dead letter is a one-row message naming its row.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from v10r.errors import QueueError
from v10r.keys import RowKey, parse_json, wire_key
from v10r.redact import printable

_json_text = functools.lru_cache(maxsize=1024)(json.dumps)  # a pipeline name, quoted

TASK_VERSION = 2
READ_VERSIONS = (1, 2)
MAX_MESSAGE_ROWS = 100  # rows per message: amortizes the broker's cost, bounds a redelivery

Origin = Literal["live", "catchup"]  # a change notification, or a catch-up scan / backfill
ORIGINS: tuple[Origin, ...] = ("live", "catchup")  # where queues keep them apart: live first


@dataclass(frozen=True, slots=True)
class Task:
    pipeline: str
    database: str
    table: str  # "schema.table", unquoted
    id: RowKey
    text_column: str  # the first source column; all of the pipeline's columns are read
    embedding_column: str
    origin: Origin = "live"  # live work goes before backfill where a rate limit applies
    v: int = TASK_VERSION

    def to_json(self) -> bytes:
        """This row alone as a message: a retry or a dead letter names its row."""
        return encode_message([self])

    @classmethod
    def from_json(cls, raw: bytes | str) -> Task:
        """A one-row message (a dead letter); more rows is an error."""
        tasks = read_message(raw)
        if len(tasks) != 1:
            raise QueueError(f"malformed task message: {len(tasks)} rows where one was expected")
        return tasks[0]

    @property
    def key(self) -> bytes:
        """Stable bytes for the row: the dedup key, and what places it in a group.
        `["<pipeline>",<id>]` in compact JSON with sorted keys; an integer id (the usual
        key) skips the encoder, once per row on every path."""
        if type(self.id) is int:
            return f"[{_json_text(self.pipeline)},{self.id}]".encode()
        return json.dumps([self.pipeline, wire_key(self.id)], separators=(",", ":"),
                          sort_keys=True).encode()

    @property
    def header(self) -> tuple[str, str, str, str, str, Origin]:
        """What the rows of one message share."""
        return (self.pipeline, self.database, self.table, self.text_column,
                self.embedding_column, self.origin)


@dataclass(frozen=True, slots=True)
class Message:
    """One message on the wire: `key` names its group (the Kafka record key)."""

    group: int
    key: bytes
    body: bytes
    rows: int


def row_group(task: Task, groups: int) -> int:
    """The row's group, stable across processes and releases (crc32, not `hash`)."""
    return zlib.crc32(task.key) % groups if groups > 1 else 0


def pack(tasks: Sequence[Task], *, groups: int = 1,
         max_rows: int = MAX_MESSAGE_ROWS) -> list[Message]:
    """Tasks as messages of at most `max_rows` rows sharing a header and a group,
    in the order each group's first task came."""
    buckets: dict[tuple[Any, ...], list[Task]] = {}
    for task in tasks:
        buckets.setdefault((*task.header, row_group(task, groups)), []).append(task)
    messages = []
    for (pipeline, *_, group), rows in buckets.items():
        key = json.dumps([pipeline, group], separators=(",", ":")).encode()
        for start in range(0, len(rows), max(1, max_rows)):
            chunk = rows[start:start + max(1, max_rows)]
            messages.append(Message(group, key, encode_message(chunk), len(chunk)))
    return messages


def encode_message(tasks: Sequence[Task]) -> bytes:
    """Rows that share a header (`Task.header`) as one version-2 message."""
    first = tasks[0]
    return json.dumps(
        {"v": TASK_VERSION, "pipeline": first.pipeline, "database": first.database,
         "table": first.table, "text_column": first.text_column,
         "embedding_column": first.embedding_column, "origin": first.origin,
         "ids": [wire_key(t.id) for t in tasks]},
        separators=(",", ":"), sort_keys=True).encode()


def read_message(raw: bytes | str) -> list[Task]:
    """Every task of a message, of any version this release reads; or `QueueError`.

    The one decoder: every queue adapter and the Faust agent read messages here.
    """
    try:
        data = parse_json(raw)  # exact numbers: a key read as a float names another row
        version = data.get("v")
        if version not in READ_VERSIONS:
            raise QueueError(
                f"task message version {version!r} is not supported (this v10r reads "
                f"v{', v'.join(map(str, READ_VERSIONS))})",
                hint="run workers and listener from the same v10r release")
        ids = [data["id"]] if version == 1 else data["ids"]
        if not isinstance(ids, list) or not ids:
            raise TypeError("ids must be a non-empty list")
        header = (data["pipeline"], data["database"], data["table"], data["text_column"],
                  data["embedding_column"])
        if not all(isinstance(part, str) for part in header):
            raise TypeError("pipeline, database, table and columns must be strings")
        origin: Origin = "catchup" if data.get("origin") == "catchup" else "live"
        return [Task(*header[:3], wire_key(key), *header[3:], origin=origin)  # type: ignore[misc]
                for key in ids]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise QueueError(f"malformed task message: {printable(str(exc))[:200]}") from None
