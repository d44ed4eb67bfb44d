"""Batches of a Faust stream's events, with a window that the first event opens.

A batch is bounded by what its events carry (a task message holds up to 100 rows), not
by their count: `unpack` turns each event into its items as it arrives, and a batch is
full once it holds `max_` items (a batch of 256 messages was up to 25,600 rows: one
huge read, write and provider burst instead of a steady pipeline).

Faust's `Stream.take_events(max_, within)` restarts a `within` timer after every batch,
whether or not an event came: a lone change waits for the next tick (up to `within`,
half of it on average), and an idle agent wakes `1 / within` times a second. Here an
empty buffer waits for an event without a timer; the first event opens a window of
`within` for company, and a full buffer ends it at once. When events came while the
last batch was being processed (a backlog: the worker is the bottleneck), the window
is `BUSY_WITHIN_S` instead, so batches grow with the load and their per-batch costs
(statements, provider requests, table writes) are shared by more rows.

Acks are those of `take_events`: the stream's own acks are off while batching, and a
batch's events are acked when the consumer's loop body returns (or raises).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

from mode.utils.futures import notify

BUSY_WITHIN_S = 0.01  # the window after a batch that events had to wait for

T = TypeVar("T")


def take_batches(stream: Any, max_: int, within: float,
                 unpack: Callable[[Any], list[T]]) -> AsyncGenerator[list[T], None]:
    """Lists of the items `unpack` finds in the events of `stream` (a `faust.Stream`):
    at least one event's, and no more events once `max_` items are in. Registered with
    the stream like `take_events`, so a stopping stream closes it."""
    batches = _take(stream, max_, within, unpack)
    agens = getattr(stream, "_active_agens", None)
    if agens is not None:
        agens.add(batches)
    return batches


async def _take(stream: Any, max_: int, within: float,
                unpack: Callable[[Any], list[T]]) -> AsyncGenerator[list[T], None]:
    events: list[Any] = []
    items: list[T] = []
    arrived = asyncio.Event()  # the buffer holds an event
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None  # set while a batch is in the caller's hands
    backlog = False  # an event came while the last batch was in the caller's hands
    enable_acks = stream.enable_acks
    channel_it = aiter(stream.channel)

    async def add(value: Any) -> Any:
        """The stream's processor: buffer the current event, wait while a batch is out."""
        nonlocal consuming, backlog
        try:
            if consuming is not None:
                backlog = backlog or not consuming.done()  # a batch is still out
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_batches found no current event")
            items.extend(unpack(event))
            events.append(event)
            arrived.set()
            if len(items) >= max_:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # no more events once `max_` items are in
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("cannot buffer an event for a batch")
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # acked here, once the caller is done with a batch
    stream.add_processor(add)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            if await stream.wait_for_stopped(arrived):
                break
            if not full.is_set():
                window = max(within, BUSY_WITHIN_S) if backlog else within
                await stream.wait_for_stopped(full, timeout=window)
            backlog = False
            if not events:
                continue
            out = consuming = stream.loop.create_future()
            batch, done = list(items), list(events)
            try:
                yield batch
            finally:
                events.clear()
                items.clear()
                for event in done:
                    await stream.ack(event)
                arrived.clear()
                full.clear()
                notify(out)  # let the processor buffer again
                consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add)
