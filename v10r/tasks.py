"""The task message: what the listener publishes and workers consume, on every queue.

Versioned (`v`) so that a worker can refuse, rather than misread, a message from a
newer listener. JSON on the wire; the row key is also the Kafka message key, so all
tasks of one row stay in order on one partition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from v10r.errors import QueueError
from v10r.keys import RowKey, parse_json, wire_key
from v10r.redact import printable

TASK_VERSION = 1

Origin = Literal["live", "catchup"]  # a change notification, or a catch-up scan / backfill


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
        return json.dumps(
            {
                "v": self.v,
                "pipeline": self.pipeline,
                "database": self.database,
                "table": self.table,
                "id": wire_key(self.id),
                "text_column": self.text_column,
                "embedding_column": self.embedding_column,
                "origin": self.origin,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Task:
        try:
            data = parse_json(raw)  # exact numbers: a key read as a float names another row
            version = data.get("v")
            if version != TASK_VERSION:
                raise QueueError(
                    f"task message version {version!r} is not supported (this v10r reads "
                    f"v{TASK_VERSION})",
                    hint="run workers and listener from the same v10r release",
                )
            return cls(
                pipeline=data["pipeline"],
                database=data["database"],
                table=data["table"],
                id=wire_key(data["id"]),
                text_column=data["text_column"],
                embedding_column=data["embedding_column"],
                origin="catchup" if data.get("origin") == "catchup" else "live",
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise QueueError(f"malformed task message: {printable(str(exc))[:200]}") from None

    @property
    def key(self) -> bytes:
        """Stable bytes for the row: the Kafka key and the dedup key."""
        return json.dumps([self.pipeline, wire_key(self.id)], separators=(",", ":"), sort_keys=True).encode()
