"""Batching: every request within the provider's limits, every vector back in its place."""

from __future__ import annotations

import numpy as np
import pytest

from v10r.providers.batching import assemble, clip, plan_batches

pytestmark = pytest.mark.unit

CASES = [
    # (text lengths, max texts per batch, max chars per batch, by_length, expected batches)
    ([], 4, 100, False, []),
    ([5], 4, 100, False, [(0,)]),
    ([1, 1, 1, 1, 1], 2, 100, False, [(0, 1), (2, 3), (4,)]),
    ([40, 40, 40], 10, 100, False, [(0, 1), (2,)]),
    ([40, 60, 1], 10, 100, False, [(0, 1), (2,)]),
    ([500, 1, 1], 10, 100, False, [(0,), (1, 2)]),  # oversize travels alone, not dropped
    ([1, 500, 1], 10, 100, False, [(0,), (1,), (2,)]),
    ([30, 1, 20, 2], 2, 100, True, [(1, 3), (2, 0)]),  # similar lengths together
    ([3, 3, 3], 1, 100, False, [(0,), (1,), (2,)]),
]


@pytest.mark.parametrize(("lengths", "size", "chars", "by_length", "expected"), CASES)
def test_batches_respect_count_and_character_limits(lengths, size, chars, by_length, expected):
    batches = plan_batches(lengths, max_batch_size=size, max_batch_chars=chars, by_length=by_length)
    assert batches == expected
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


@pytest.mark.parametrize("by_length", [False, True])
def test_assembled_rows_follow_input_order(by_length):
    lengths = [7, 1, 9, 3, 3, 12, 1]
    batches = plan_batches(lengths, max_batch_size=3, max_batch_chars=15, by_length=by_length)
    results = [np.array([[float(i)] * 2 for i in batch], dtype=np.float32) for batch in batches]
    out = assemble(batches, results, dimensions=2)
    assert out.dtype == np.float32
    assert out[:, 0].tolist() == [float(i) for i in range(len(lengths))]


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        plan_batches([1], max_batch_size=0, max_batch_chars=10)


def test_clip_cuts_only_long_texts():
    assert clip(["abc", "abcdef", ""], 4) == ["abc", "abcd", ""]


async def test_in_flight_keeps_order_and_never_exceeds_its_limit():
    import asyncio

    from v10r.providers.batching import in_flight

    running, peak = 0, 0

    def call(i: int):
        async def run() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            for _ in range(10 - i):  # later calls finish first
                await asyncio.sleep(0)
            running -= 1
            return i
        return run

    assert await in_flight([call(i) for i in range(10)], 3) == list(range(10))
    assert peak == 3
    assert await in_flight([], 3) == []


async def test_in_flight_raises_the_first_failure_and_cancels_the_rest():
    import asyncio

    from v10r.providers.batching import in_flight

    started, cancelled = [], []

    def call(i: int):
        async def run() -> int:
            started.append(i)
            if i == 1:
                raise KeyError("refused")
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
            return i
        return run

    with pytest.raises(KeyError, match="refused"):
        await in_flight([call(i) for i in range(6)], 3)
    assert started == [0, 1, 2, 3] and sorted(cancelled) == [0, 2, 3]
