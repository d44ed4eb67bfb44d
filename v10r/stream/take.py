"""Batches of a Faust stream's events, with a window that the first event opens.

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
from collections.abc import AsyncGenerator
from typing import Any

from mode.utils.futures import notify

BUSY_WITHIN_S = 0.01  # the window after a batch that events had to wait for


def take_batches(stream: Any, max_: int, within: float) -> AsyncGenerator[list[Any], None]:
    """Lists of at most `max_` events of `stream` (a `faust.Stream`); registered with
    the stream like `take_events`, so a stopping stream closes it."""
    batches = _take(stream, max_, within)
    agens = getattr(stream, "_active_agens", None)
    if agens is not None:
        agens.add(batches)
    return batches


async def _take(stream: Any, max_: int, within: float) -> AsyncGenerator[list[Any], None]:
    events: list[Any] = []
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
            events.append(event)
            arrived.set()
            if len(events) >= max_:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # never more than `max_` in a batch
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
            batch = list(events)
            try:
                yield batch
            finally:
                events.clear()
                for event in batch:
                    await stream.ack(event)
                arrived.clear()
                full.clear()
                notify(out)  # let the processor buffer again
                consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add)
