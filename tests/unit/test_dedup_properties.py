"""Properties of burst dedup over arbitrary notification sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v10r.listen.dedup import Deduplicator

pytestmark = pytest.mark.unit

events = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from([0.0, 0.001, 0.03, 0.1, 0.25]),
              st.booleans()),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(events=events, window_ms=st.sampled_from([0, 10, 100]), max_keys=st.integers(1, 5))
def test_every_key_ends_with_its_last_item_and_never_more_than_it_got(
    events: list[tuple[int, float, bool]], window_ms: int, max_keys: int
) -> None:
    now = [0.0]
    d: Deduplicator[tuple[int, int]] = Deduplicator(window_ms / 1000, max_keys, lambda: now[0])
    emitted: list[tuple[int, int]] = []
    offered: dict[int, list[int]] = {}
    for seq, (key, delta, tick) in enumerate(events):
        now[0] += delta
        if tick:
            emitted += d.due()
        offered.setdefault(key, []).append(seq)
        emitted += d.offer(key, (key, seq))
        assert len(d) <= max_keys
    now[0] += 1.0
    emitted += d.due()
    for key, seqs in offered.items():
        mine = [seq for k, seq in emitted if k == key]
        assert mine, "a key's changes must produce at least one emission"
        assert mine[-1] == seqs[-1], "the last emission carries the last change"
        assert mine == sorted(mine) and set(mine) <= set(seqs)
    assert d.pending == 0
