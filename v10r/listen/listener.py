"""`v10r listen`: one LISTEN connection per database → dedup → batched publish.

Three loops share one listener: the connection loop (connect, LISTEN every pipeline's
channel, watch for loss, reconnect with exponential backoff), the flush loop (close due
dedup windows, publish the outbox in batches) and the catch-up loop (scan for stale rows
on start, after every reconnect and on `scan` notifications). NOTIFY is not durable, so
every reconnect is followed by a catch-up scan: what was committed while the connection
was down is found by its stale hash. Before LISTEN, the connection's session takes the
advisory lock of its pipeline set (`leader`): of several listeners, one is active and the
others wait as standbys, until its session ends.

Backpressure: when the outbox holds `max_buffer` tasks (the queue is slow or down), the
listener stops reading its socket; PostgreSQL keeps the notifications queued server-side
until reading resumes, so memory stays bounded and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import asyncpg

from v10r import db
from v10r.errors import PlanError, V10rError
from v10r.keys import ColumnType, read_column_types
from v10r.listen.catchup import DEFAULT_PAGE_SIZE, catch_up
from v10r.listen.dedup import DEFAULT_MAX_KEYS, Deduplicator
from v10r.listen.leader import KEEPALIVES, POLL_S, Lead, lead, lock_key
from v10r.listen.payload import DropLog, InvalidNotification, dedup_key, read_notification
from v10r.listen.targets import Target
from v10r.ops.metrics import Sample
from v10r.providers.retry import Backoff, Streak
from v10r.queues.base import Queue
from v10r.queues.connect import is_broker_outage
from v10r.redact import mask_text
from v10r.tasks import Task

log = logging.getLogger(__name__)

# The pipeline's columns are not where the listener thought: read the applied names again.
MOVED = (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError)
RECOVERABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
               V10rError, ConnectionError)


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    batch_size: int = 500  # tasks per publish
    flush_interval_s: float = 0.005  # how long a lone task may wait for company
    max_buffer: int = 10_000  # outbox size at which reading notifications pauses
    health_interval_s: float = 5.0
    health_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 30.0
    catchup: bool = True  # scan on start and after reconnects (`scan` notifications always)
    # Also scan every so often: a task lost downstream (a broker or consumer bug, a
    # purged dead-letter queue) is found by its stale hash and enqueued again.
    catchup_interval_s: float | None = 300.0
    # At least this long between two scans: `scan` notifications (which any role can
    # send) are coalesced, so they cannot keep the database busy scanning.
    scan_gap_s: float = 1.0
    catchup_page_size: int = DEFAULT_PAGE_SIZE
    dedup_max_keys: int = DEFAULT_MAX_KEYS
    shutdown_timeout_s: float = 10.0
    standby_poll_s: float = POLL_S  # how often a standby tries to become active (leader.py)

    def backoff(self) -> Streak:
        """Reconnects and re-publishes wait under the one backoff policy, without jitter:
        the listener is a single process, nothing to spread."""
        return Streak(Backoff(base_s=self.backoff_initial_s, cap_s=self.backoff_max_s,
                              jitter=0.0))


@dataclass
class ListenerStats:
    notifications: int = 0
    published: int = 0
    connections: int = 0
    takeovers: int = 0
    catchups: int = 0
    caught_up_rows: int = 0
    bad_payloads: int = 0


class _StateLog:
    """Logs a state only when it changes, so a long outage is one line, not thousands."""

    def __init__(self, what: str) -> None:
        self.what, self.state = what, ""

    def set(self, state: str, message: str, level: int = logging.INFO) -> None:
        if state != self.state:
            self.state = state
            log.log(level, "%s: %s", self.what, message)


class Listener:
    """Turns notifications of one database's tables into tasks on `queue`."""

    def __init__(self, targets: Sequence[Target], queue: Queue,
                 settings: ListenerSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not targets:
            raise ValueError("a listener needs at least one pipeline")
        self.targets = list(targets)
        self.queue = queue
        self.settings = settings or ListenerSettings()
        self.database = self.targets[0].pipeline.database
        self.stats = ListenerStats()
        self.listening = asyncio.Event()  # set while LISTEN is active
        self.backend_pid: int | None = None
        self._clock = clock
        self._channels: dict[str, list[Target]] = {}
        for target in self.targets:
            self._channels.setdefault(target.channel, []).append(target)
        self._dedup = {t.name: Deduplicator[Task](t.pipeline.queue.dedup_window_ms / 1000,
                                                  self.settings.dedup_max_keys, clock)
                       for t in self.targets}
        self._outbox: dict[str, deque[Task]] = {t.name: deque() for t in self.targets}
        self._wake = asyncio.Event()
        self._scan_requests: set[str] = set()
        self._scan_wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._keys: dict[str, tuple[ColumnType, ...]] = {}  # key columns with their types
        self._drops = DropLog(log.warning)
        self._paused = False
        self._last_publish = float("-inf")
        self._lock_key = lock_key([t.name for t in self.targets])

    # ---- public -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> ListenerStats:
        """Listen until `stop` is set, then flush what is buffered and return."""
        loops = [asyncio.create_task(self._connection_loop(stop), name="v10r-listen"),
                 asyncio.create_task(self._flush_loop(), name="v10r-flush"),
                 asyncio.create_task(self._catchup_loop(), name="v10r-catchup")]
        try:
            await self._until(stop, loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._close_connection()
            await self._final_flush()
        return self.stats

    def request_scan(self, targets: Sequence[Target] | None = None) -> None:
        """Ask the catch-up loop to scan these pipelines (all by default) soon."""
        self._scan_requests.update(t.name for t in (targets or self.targets))
        self._scan_wake.set()

    @property
    def buffered(self) -> int:
        """Tasks waiting to be published."""
        return sum(len(q) for q in self._outbox.values())

    @property
    def paused(self) -> bool:
        """True while reading notifications is paused for backpressure."""
        return self._paused

    @property
    def idle(self) -> bool:
        """Nothing buffered and no trailing dedup emission pending."""
        return not self.buffered and not any(d.pending for d in self._dedup.values())

    @staticmethod
    async def _until(stop: asyncio.Event, loops: list[asyncio.Task[None]]) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, *loops], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopper.cancel()

    # ---- connection ---------------------------------------------------------------

    async def _connection_loop(self, stop: asyncio.Event) -> None:
        state = _StateLog(f"database {self.database.name}")
        backoff = self.settings.backoff()
        first = True
        while not stop.is_set():
            lost = asyncio.Event()
            try:
                role = await self._open(lost, stop)
            except RECOVERABLE as exc:
                state.set("down", f"cannot listen ({_describe(exc)}); retrying with backoff",
                          logging.WARNING)
                await _wait(stop, backoff.next())
                continue
            if role == "stopped":
                break
            state.set("up", f"listening on {', '.join(sorted(self._channels))}")
            backoff.reset()
            self.stats.takeovers += role == "took_over"
            if self.settings.catchup or not first or role == "took_over":
                self.request_scan()
            first = False
            await self._watch(lost, stop)
            self.listening.clear()
            await self._close_connection()
            if not stop.is_set():
                state.set("lost", "connection lost; reconnecting", logging.WARNING)

    async def _open(self, lost: asyncio.Event, stop: asyncio.Event) -> Lead:
        """Connect, become the active listener (see `leader`), then LISTEN."""
        conn = await db.connect(self.database, "write", pipeline=self.targets[0].name,
                                vector_codec=False, server_settings=KEEPALIVES)
        try:
            role = await lead(conn, self._lock_key, stop, poll_s=self.settings.standby_poll_s)
            if role == "stopped":
                conn.terminate()
                return role
            await self._read_keys(conn)
            conn.add_termination_listener(lambda _c: lost.set())
            for channel in self._channels:
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._paused = conn, False
        self.backend_pid = conn.get_server_pid()
        self.stats.connections += 1
        self.listening.set()
        self._apply_backpressure()
        return role

    async def _read_keys(self, conn: asyncpg.Connection) -> None:
        """Each pipeline's key columns and types, which notifications are checked against
        (read again on every connect: a key column's type may have changed)."""
        for target in self.targets:
            try:
                self._keys[target.name] = await read_column_types(conn, target.names, target.name)
            except PlanError as exc:
                self._keys.pop(target.name, None)
                log.warning("%s; its notifications are checked by key shape only", exc.message)

    async def _watch(self, lost: asyncio.Event, stop: asyncio.Event) -> None:
        """Return when the connection is lost (termination or failed health check) or on stop."""
        while not (lost.is_set() or stop.is_set()):
            await _wait_any((lost, stop), self.settings.health_interval_s)
            if lost.is_set() or stop.is_set() or self._paused or self._conn is None:
                continue
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"),
                                       self.settings.health_timeout_s)
            except RECOVERABLE:
                lost.set()

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        self.listening.clear()
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), 2.0)
        except (*RECOVERABLE, asyncio.CancelledError):
            conn.terminate()

    # ---- notifications ------------------------------------------------------------

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self.stats.notifications += 1
        try:
            notice = read_notification(payload, self._channels.get(channel, []), self._keys)
        except InvalidNotification as exc:
            self.stats.bad_payloads += 1
            self._drops.drop(channel, payload, str(exc))
            return
        if notice.scan:
            self.request_scan(notice.targets)
            return
        for target, row_id in zip(notice.targets, notice.keys):
            task = target.task(row_id)
            self._outbox[target.name].extend(self._dedup[target.name].offer(dedup_key(row_id),
                                                                            task))
        self._wake.set()
        self._apply_backpressure()

    def _apply_backpressure(self) -> None:
        """Pause reading at `max_buffer` buffered tasks; resume below half of it."""
        limit = self.settings.max_buffer
        if not self._paused and self.buffered >= limit:
            self._set_reading(False)
        elif self._paused and self.buffered <= limit // 2:
            self._set_reading(True)

    def _set_reading(self, on: bool) -> None:
        transport = getattr(self._conn, "_transport", None) if self._conn else None
        if transport is None:
            return
        if on:
            transport.resume_reading()
            log.info("queue caught up; reading notifications again")
        else:
            transport.pause_reading()
            log.info("%d tasks buffered: pausing notifications until the queue catches up "
                     "(PostgreSQL keeps them queued)", self.buffered)
        self._paused = not on

    # ---- publishing ---------------------------------------------------------------

    async def _flush_loop(self) -> None:
        state = _StateLog(f"queue {self.queue.kind}")
        backoff = self.settings.backoff()
        while True:
            await self._wait_for_work()
            try:
                await self._publish_all()
            except Exception as exc:
                if not _recoverable(exc):
                    raise
                state.set("down", f"publish failed ({_describe(exc)}); "
                          f"{self.buffered} task(s) kept, retrying", logging.WARNING)
                await asyncio.sleep(backoff.next())
                continue
            if state.state == "down":
                state.set("up", "publishing again")
            backoff.reset()
            self._apply_backpressure()

    async def _wait_for_work(self) -> None:
        """Sleep until a task is buffered or a dedup window is due, then let a batch form."""
        while True:
            self._collect_due()
            if self.buffered:
                if self.buffered < self.settings.batch_size and self._streaming():
                    await asyncio.sleep(self.settings.flush_interval_s)
                    self._collect_due()
                return
            self._wake.clear()
            deadlines = [d for d in (x.next_deadline() for x in self._dedup.values()) if d]
            timeout = max(0.0, min(deadlines) - self._clock()) if deadlines else 1.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(timeout, 1.0))

    def _streaming(self) -> bool:
        """Tasks are flowing (the last publish ended within the flush interval), so a
        short wait fills the batch; a lone change after a quiet spell goes out at once."""
        return self._clock() - self._last_publish < self.settings.flush_interval_s

    def _collect_due(self) -> None:
        for name, dedup in self._dedup.items():
            self._outbox[name].extend(dedup.due())

    async def _publish_all(self) -> None:
        for name, outbox in self._outbox.items():
            while outbox:
                batch = list(islice(outbox, self.settings.batch_size))
                await self.queue.publish(name, batch)
                for _ in batch:
                    outbox.popleft()
                self.stats.published += len(batch)
                self._last_publish = self._clock()

    async def _final_flush(self) -> None:
        for name, dedup in self._dedup.items():
            self._outbox[name].extend(dedup.drain())
        if not self.buffered:
            return
        try:
            await asyncio.wait_for(self._publish_all(), self.settings.shutdown_timeout_s)
        except Exception as exc:
            if not _recoverable(exc):
                raise
            log.error("%d task(s) could not be published before exit (%s); the next "
                      "catch-up scan will find those rows", self.buffered, _describe(exc))

    # ---- catch-up -----------------------------------------------------------------

    async def _catchup_loop(self) -> None:
        backoff = self.settings.backoff()
        while True:
            if not await _woken(self._scan_wake, self.settings.catchup_interval_s):
                self._scan_requests.update(t.name for t in self.targets)  # periodic scan
            self._scan_wake.clear()
            await self.listening.wait()  # a standby leaves scanning to the active listener
            names, self._scan_requests = self._scan_requests, set()
            targets = [t for t in self.targets if t.name in names]
            try:
                result = await catch_up(targets, self.queue,
                                        page_size=self.settings.catchup_page_size,
                                        interactive=False)
            except Exception as exc:
                if not _recoverable(exc):
                    raise
                log.warning("catch-up scan failed (%s); will retry", _describe(exc))
                if isinstance(exc, MOVED):  # e.g. a blue/green cutover swapped the columns
                    await self._follow_applied_names()
                self.request_scan(targets)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            self.stats.catchups += 1
            self.stats.caught_up_rows += result.total
            await asyncio.sleep(self.settings.scan_gap_s)  # requests meanwhile: one scan


    async def _follow_applied_names(self) -> None:
        """Read the columns each pipeline writes again (`v10r apply` may have cut over
        to a re-embedded column), so scans and tasks name what exists now."""
        from v10r.listen.applied import resolve_targets

        try:
            conn = await db.connect(self.database, "read", pipeline=self.targets[0].name,
                                    vector_codec=False)
            try:
                fresh = await resolve_targets(conn, [t.pipeline for t in self.targets])
            finally:
                await conn.close()
        except RECOVERABLE as exc:
            log.warning("cannot read the applied names (%s); will retry", _describe(exc))
            return
        self.targets = fresh
        self._channels = {}
        for target in fresh:
            self._channels.setdefault(target.channel, []).append(target)
        log.info("following the applied columns: %s",
                 ", ".join(f"{t.name} → {t.names.embedding}" for t in fresh))


def _recoverable(exc: BaseException) -> bool:
    """A database or broker outage (kept and retried), not a bug (which stops the listener)."""
    return isinstance(exc, RECOVERABLE) or is_broker_outage(exc)


def _describe(exc: BaseException) -> str:
    return mask_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


async def _woken(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for `event`, at most `timeout` seconds (None: forever); was it set?"""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


async def _wait_any(events: Sequence[asyncio.Event], timeout: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def listener_samples(listeners: Sequence[Listener]) -> list[Sample]:
    """Prometheus samples of the listeners' counters and buffers (see `v10r.ops.metrics`)."""
    counters = [("notifications", "notifications received"),
                ("published", "tasks published from notifications"),
                ("caught_up_rows", "tasks published by catch-up scans"),
                ("catchups", "catch-up scans run"),
                ("connections", "database connections opened (1 + reconnects)"),
                ("takeovers", "times this listener became active after waiting as a standby"),
                ("bad_payloads", "notifications ignored: not from v10r's trigger, or no key")]
    samples = []
    for listener in listeners:
        labels = (("database", listener.database.name),)
        samples += [Sample(f"listener_{field}_total", getattr(listener.stats, field), help,
                           labels=labels) for field, help in counters]
        samples += [
            Sample("listener_buffered_tasks", listener.buffered, "tasks waiting to be published",
                   "gauge", labels),
            Sample("listener_active", int(listener.listening.is_set()),
                   "1 while this listener is the active one (0: standby or reconnecting)",
                   "gauge", labels),
            Sample("listener_paused", int(listener.paused),
                   "1 while reading notifications is paused (backpressure)", "gauge", labels),
        ]
    return samples
