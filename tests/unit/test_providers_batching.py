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
