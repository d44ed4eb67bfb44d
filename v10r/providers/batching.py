"""Splitting texts into provider requests, and putting the answers back in order.

Pure functions, so every limit (texts per request, characters per request) is tested
by a table, and providers only implement "call the API once".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

Batch = tuple[int, ...]  # indices into the caller's list of texts


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch_size: int,
    max_batch_chars: int,
    by_length: bool = False,
) -> list[Batch]:
    """Groups of indices, each within `max_batch_size` texts and `max_batch_chars` characters.

    A text longer than the character budget travels alone rather than being dropped.
    `by_length` groups texts of similar length, so a local model pads less.
    """
    if max_batch_size < 1 or max_batch_chars < 1:
        raise ValueError("batch limits must be positive")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i]) if by_length else range(len(lengths))
    batches: list[Batch] = []
    current: list[int] = []
    chars = 0
    for index in order:
        size = lengths[index]
        if current and (len(current) == max_batch_size or chars + size > max_batch_chars):
            batches.append(tuple(current))
            current, chars = [], 0
        current.append(index)
        chars += size
    if current:
        batches.append(tuple(current))
    return batches


def assemble(batches: Sequence[Batch], results: Sequence[np.ndarray], dimensions: int) -> np.ndarray:
    """One float32 array with row i = the vector of text i, whatever order batches ran in."""
    total = sum(len(batch) for batch in batches)
    out = np.empty((total, dimensions), dtype=np.float32)
    for batch, vectors in zip(batches, results, strict=True):
        out[list(batch)] = vectors
    return out


def clip(texts: Sequence[str], max_chars: int) -> list[str]:
    """Texts cut to the provider's longest accepted input."""
    return [text if len(text) <= max_chars else text[:max_chars] for text in texts]


async def in_flight(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Every call's result in order, with at most `limit` running at once.

    The first failure cancels the calls still running and is raised as it is, so a
    caller sees the same error types as from one call at a time.
    """
    if limit <= 1 or len(calls) <= 1:
        return [await call() for call in calls]
    gate = asyncio.Semaphore(limit)

    async def gated(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    tasks = [asyncio.ensure_future(gated(call)) for call in calls]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in tasks if t in done and not t.cancelled()
                       and t.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
