"""Burst dedup of row notifications: leading edge at once, one trailing edge per window.

A row updated 50 times in 100 ms should cost two tasks, not fifty — but never zero
for its *last* text: the first notification is emitted immediately (a single change is
not delayed by the window), repeats inside the window are collapsed into one pending
emission, and when the window closes that pending emission goes out and opens a new
window (so a row updated continuously yields about one task per window).

Pure and clock-injected: no I/O, no sleeping; the caller asks `due()` at
`next_deadline()`. Memory is bounded by `max_keys`: when that many rows are being
tracked, a new row's notification is emitted untracked instead — never dropped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_KEYS = 100_000


@dataclass(slots=True)
class _Window(Generic[T]):
    deadline: float
    pending: T | None = None
    has_pending: bool = False


@dataclass
class Deduplicator(Generic[T]):
    """Collapses repeats of the same key within `window_s` seconds."""

    window_s: float
    max_keys: int = DEFAULT_MAX_KEYS
    clock: Callable[[], float] = time.monotonic
    # Insertion order is deadline order: every window lasts `window_s` and is (re)opened
    # at the current time, so the oldest entry always closes first.
    _open: OrderedDict[Hashable, _Window[T]] = field(default_factory=OrderedDict, repr=False)
    collapsed: int = 0  # notifications absorbed into another emission (for stats)

    def __post_init__(self) -> None:
        if self.window_s < 0:
            raise ValueError("window_s must be >= 0")
        if self.max_keys < 1:
            raise ValueError("max_keys must be >= 1")

    def __len__(self) -> int:
        return len(self._open)

    def offer(self, key: Hashable, item: T) -> list[T]:
        """Record one notification; returns what must be emitted now (0 or 1 items)."""
        if self.window_s == 0:
            return [item]
        window = self._open.get(key)
        now = self.clock()
        if window is not None and window.deadline > now:
            if window.has_pending:
                self.collapsed += 1
            window.pending, window.has_pending = item, True
            return []
        emitted = self.due(now) if window is not None else []
        if key in self._open:  # its window just closed with a trailing emission
            self._open[key].pending, self._open[key].has_pending = item, True
            return emitted
        if len(self._open) >= self.max_keys:
            emitted.extend(self.due(now))
            if len(self._open) >= self.max_keys:
                emitted.append(item)  # too many rows in flight: emit untracked
                return emitted
        self._open[key] = _Window(deadline=now + self.window_s)
        emitted.append(item)
        return emitted

    def due(self, now: float | None = None) -> list[T]:
        """Close every window whose time is up; returns their trailing emissions."""
        now = self.clock() if now is None else now
        out: list[T] = []
        while self._open:
            key, window = next(iter(self._open.items()))
            if window.deadline > now:
                break
            del self._open[key]
            if window.has_pending:
                out.append(window.pending)  # type: ignore[arg-type]
                self._open[key] = _Window(deadline=now + self.window_s)
        return out

    @property
    def pending(self) -> int:
        """Trailing emissions waiting for their window to close."""
        return sum(w.has_pending for w in self._open.values())

    def next_deadline(self) -> float | None:
        """When `due()` next has something to do (clock time), or None if nothing is open."""
        for window in self._open.values():
            return window.deadline
        return None

    def drain(self) -> list[T]:
        """Every pending trailing emission, now (on shutdown); forgets all windows."""
        out = [w.pending for w in self._open.values() if w.has_pending]
        self._open.clear()
        return out  # type: ignore[return-value]
