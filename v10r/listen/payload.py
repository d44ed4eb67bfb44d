"""Reading a notification: a hint to look at a row, never trusted.

Any role that can connect may `NOTIFY v10r_<table>`, so a payload must prove to be what
v10r's trigger sends — a small JSON object `{"id": <key>, "table": "<schema.table>"}`
(or `{"scan": true, "table": ...}`) whose table is the channel's own and whose key fits
the pipeline's key columns. Anything else is refused here, before it can become a task:
a forged key never reaches the queue, so it can fail nothing. The payload's table only
selects among the channel's own pipelines; the task is built from the pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from v10r.keys import ColumnType, InvalidKey, RowKey, check_key, parse_json
from v10r.listen.targets import Target

MAX_PAYLOAD_CHARS = 8000  # PostgreSQL refuses longer NOTIFY payloads anyway
_FIELDS = frozenset({"id", "table", "scan"})


class InvalidNotification(ValueError):
    """A payload v10r's trigger would not have sent."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What a valid payload asks for: a scan of `targets`, or one row per target."""

    targets: tuple[Target, ...]
    scan: bool = False
    keys: tuple[RowKey, ...] = ()  # the checked key per target, in wire form


def read_notification(payload: str, targets: Sequence[Target],
                      key_columns: Mapping[str, tuple[ColumnType, ...]]) -> Notification:
    """Check one payload against the channel's `targets`; `InvalidNotification` if it fails.

    `key_columns` holds each pipeline's key columns with their types, as read from the
    catalog; a pipeline without them (its table is missing) is checked by shape only.
    """
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise InvalidNotification(f"payload of {len(payload)} characters")
    try:
        message = parse_json(payload)
    except (ValueError, RecursionError):
        raise InvalidNotification("payload is not JSON") from None
    if not isinstance(message, dict) or not set(message) <= _FIELDS:
        raise InvalidNotification("payload is not an object of id, table (or scan)")
    table = message.get("table")
    mine = tuple(t for t in targets if t.table == table)
    if not isinstance(table, str) or not mine:
        raise InvalidNotification("table is not the channel's table")
    if "scan" in message:
        if message["scan"] is not True or "id" in message:
            raise InvalidNotification("scan must be true, without an id")
        return Notification(mine, scan=True)
    if "id" not in message:
        raise InvalidNotification("payload has no id")
    checked, keys, errors = [], [], []
    for target in mine:
        columns = key_columns.get(target.name) or tuple(ColumnType(k) for k in target.names.key)
        try:
            keys.append(check_key(message["id"], columns))
        except InvalidKey as exc:
            errors.append(str(exc))
            continue
        checked.append(target)
    if not checked:
        raise InvalidNotification(errors[0])
    return Notification(tuple(checked), keys=tuple(keys))


def dedup_key(row_id: RowKey) -> Hashable:
    """A row's identity within one pipeline's dedup window, built once per notification.

    Plain integer and text keys are their own identity (the hot path: no JSON encoding
    per notification); anything else — composite keys, booleans — keeps its canonical
    JSON, tagged so it never equals a plain key.
    """
    if type(row_id) is int or type(row_id) is str:
        return row_id
    return ("json", json.dumps(row_id, separators=(",", ":"), sort_keys=True))


@dataclass
class DropLog:
    """Counts refused notifications and logs them at most once per `interval_s`, so a
    flood of forged payloads cannot flood the log."""

    log: Callable[[str], None]
    interval_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    dropped: int = 0
    _unlogged: int = 0
    _next: float = field(default=float("-inf"), repr=False)

    def drop(self, channel: str, payload: str, reason: str) -> None:
        self.dropped += 1
        self._unlogged += 1
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval_s
        count, self._unlogged = self._unlogged, 0
        self.log(f"ignored {count} notification(s) on {channel} that v10r's trigger did not "
                 f"send (last: {reason}; payload {payload[:120]!r})")
