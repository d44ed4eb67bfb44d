"""What `status --watch` derives from successive samples: rate, ETA, and whether any
worker is consuming at all.

Pure: no clock, no I/O. "Embedding" is claimed only on evidence (rows became current,
the queue shrank, or the broker shows consumers); otherwise pending rows are
"stale (no worker?)", which is what an operator needs to hear when no worker runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW_S = 60.0  # the rate is measured over this much of the recent past


@dataclass(frozen=True, slots=True)
class Observation:
    at: float  # seconds, monotonic
    current: int  # rows current
    waiting: int | None = None  # tasks waiting in the queue (None: not known)


@dataclass
class Trend:
    """One pipeline's recent observations."""

    window_s: float = WINDOW_S
    seen: deque[Observation] = field(default_factory=deque)

    def add(self, observation: Observation) -> None:
        self.seen.append(observation)
        while len(self.seen) > 2 and observation.at - self.seen[0].at > self.window_s:
            self.seen.popleft()

    @property
    def rate(self) -> float | None:
        """Rows made current per second over the window (None: one sample only)."""
        if len(self.seen) < 2:
            return None
        first, last = self.seen[0], self.seen[-1]
        span = last.at - first.at
        return max(0.0, (last.current - first.current) / span) if span > 0 else None

    def eta_s(self, pending: int) -> float | None:
        rate = self.rate
        return pending / rate if rate and pending else None

    @property
    def queue_shrank(self) -> bool:
        known = [o.waiting for o in self.seen if o.waiting is not None]
        return len(known) >= 2 and known[-1] < known[-2]


def consuming(trend: Trend | None, consumers: int | None) -> bool:
    """Whether there is evidence that a worker is consuming this pipeline's tasks."""
    if consumers:
        return True
    if trend is None:
        return False
    return bool(trend.rate) or trend.queue_shrank


def state_of(report: dict[str, Any], active: bool) -> tuple[str, str]:
    """(label, rich style) of one pipeline's status row."""
    counts = report.get("counts") or {}
    if migration := report.get("reembedding"):
        return ("ready to cut over", "yellow") if migration["complete"] else (
            ("re-embedding", "yellow") if active else ("re-embedding (no worker?)", "red"))
    if not report.get("applied"):
        return "not applied", "red"
    if not report.get("up_to_date"):
        return "drifted", "red"
    if counts.get("pending") == 0:
        return "in sync", "green"
    return ("embedding", "yellow") if active else ("stale (no worker?)", "red")


def duration(seconds: float | None) -> str:
    """`95` → `1m35s`: short enough for a narrow terminal."""
    if seconds is None:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
