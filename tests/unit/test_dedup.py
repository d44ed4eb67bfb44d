"""Burst dedup: a leading emission at once, one trailing emission per window, nothing lost."""

from __future__ import annotations

import pytest

from v10r.listen.dedup import Deduplicator

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def dedup(clock: FakeClock, window_ms: int = 100, max_keys: int = 1000) -> Deduplicator[str]:
    return Deduplicator(window_s=window_ms / 1000, max_keys=max_keys, clock=clock)


def test_a_single_change_is_emitted_at_once(clock: FakeClock) -> None:
    d = dedup(clock)
    assert d.offer("row1", "v1") == ["v1"]
    clock.advance(0.2)
    assert d.due() == []
    assert len(d) == 0


def test_fifty_rapid_updates_become_a_leading_and_a_trailing_emission(clock: FakeClock) -> None:
    d = dedup(clock)
    emitted = []
    for i in range(50):
        emitted += d.offer("row1", f"v{i}")
        clock.advance(0.001)
    assert emitted == ["v0"]
    assert d.due() == []  # the window is still open
    clock.advance(0.1)
    emitted += d.due()
    assert emitted == ["v0", "v49"]  # the last text is not lost
    assert d.collapsed == 48
    clock.advance(0.2)
    assert d.due() == []


def test_the_trailing_emission_is_due_when_the_window_closes(clock: FakeClock) -> None:
    d = dedup(clock)
    d.offer("row1", "a")
    clock.advance(0.01)
    d.offer("row1", "b")
    assert d.next_deadline() == pytest.approx(1000.1)
    clock.now = 1000.0999
    assert d.due() == []
    clock.now = 1000.1
    assert d.due() == ["b"]


def test_a_change_after_the_window_is_a_new_leading_emission(clock: FakeClock) -> None:
    d = dedup(clock)
    assert d.offer("row1", "a") == ["a"]
    clock.advance(0.15)
    assert d.offer("row1", "b") == ["b"]


def test_continuous_updates_yield_about_one_emission_per_window(clock: FakeClock) -> None:
    d = dedup(clock)
    emitted: list[str] = []
    for i in range(100):  # one update per 10 ms for one second
        emitted += d.due()
        emitted += d.offer("row1", f"v{i}")
        clock.advance(0.01)
    clock.advance(1)
    emitted += d.due()
    assert emitted[0] == "v0" and emitted[-1] == "v99"
    assert 9 <= len(emitted) <= 12


def test_a_late_repeat_after_a_trailing_emission_is_held_not_lost(clock: FakeClock) -> None:
    d = dedup(clock)
    d.offer("row1", "a")
    d.offer("row1", "b")
    clock.advance(0.1)
    # `due()` was not called in time: the next offer closes the window first.
    assert d.offer("row1", "c") == ["b"]
    clock.advance(0.1)
    assert d.due() == ["c"]


def test_interleaved_keys_are_deduplicated_independently(clock: FakeClock) -> None:
    d = dedup(clock)
    emitted = []
    for i in range(10):
        for key in ("a", "b", "c"):
            emitted += d.offer(key, f"{key}{i}")
        clock.advance(0.001)
    assert emitted == ["a0", "b0", "c0"]
    clock.advance(0.1)
    assert sorted(d.due()) == ["a9", "b9", "c9"]


def test_windows_close_in_the_order_they_opened(clock: FakeClock) -> None:
    d = dedup(clock)
    d.offer("a", "a0")
    clock.advance(0.05)
    d.offer("b", "b0")
    d.offer("a", "a1")
    d.offer("b", "b1")
    clock.advance(0.06)
    assert d.due() == ["a1"]
    clock.advance(0.05)
    assert d.due() == ["b1"]


def test_window_zero_disables_dedup(clock: FakeClock) -> None:
    d = dedup(clock, window_ms=0)
    assert [x for i in range(5) for x in d.offer("row1", f"v{i}")] == [f"v{i}" for i in range(5)]
    assert len(d) == 0
    assert d.next_deadline() is None


def test_when_full_new_keys_are_emitted_untracked_never_dropped(clock: FakeClock) -> None:
    d = dedup(clock, max_keys=3)
    emitted = []
    for i in range(10):
        emitted += d.offer(f"row{i}", f"v{i}")
    assert emitted == [f"v{i}" for i in range(10)]
    assert len(d) == 3
    # A repeat of an untracked key is emitted again: duplicates are cheap, loss is not.
    assert d.offer("row9", "v9b") == ["v9b"]
    # Tracked keys still collapse.
    assert d.offer("row0", "v0b") == []


def test_when_full_expired_windows_make_room(clock: FakeClock) -> None:
    d = dedup(clock, max_keys=2)
    d.offer("a", "a0")
    d.offer("b", "b0")
    clock.advance(0.2)
    assert d.offer("c", "c0") == ["c0"]
    assert len(d) == 1
    assert d.offer("c", "c1") == []


def test_memory_stays_bounded_under_a_flood_of_distinct_keys(clock: FakeClock) -> None:
    d = dedup(clock, max_keys=100)
    count = 0
    for i in range(10_000):
        count += len(d.offer(i, i))
        clock.advance(0.00001)
        assert len(d) <= 100
    assert count == 10_000


def test_drain_returns_every_pending_trailing_emission(clock: FakeClock) -> None:
    d = dedup(clock)
    d.offer("a", "a0")
    d.offer("a", "a1")
    d.offer("b", "b0")
    assert d.pending == 1
    assert d.drain() == ["a1"]
    assert len(d) == 0
    assert d.next_deadline() is None


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        Deduplicator(window_s=-1)
    with pytest.raises(ValueError):
        Deduplicator(window_s=0.1, max_keys=0)
