"""When to try again: the one backoff policy of v10r, and `Retry-After`.

Every wait after a failure (a provider request, a worker's held batch, a Faust retry,
a breaker's probe) is `Backoff.delay`: exponential under a cap, with jitter so that
many workers hit by the same outage do not come back in lockstep, and a server's
`Retry-After` honoured up to a cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    retry_after_cap_s: float = 120.0  # a server asking for longer is not waited on blindly
    jitter: float = 1.0  # share of the delay drawn at random: 1 = full jitter, 0 = none

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(attempt, 0), 32))
        return ceiling * (1.0 - self.jitter * (rng or random).random())


@dataclass
class Streak:
    """Consecutive failures under one `Backoff`: `next()` is the wait before trying again,
    `reset()` after a success (for loops that retry forever, like the listener's)."""

    policy: Backoff
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return self.policy.delay(self.failures - 1)

    def reset(self) -> None:
        self.failures = 0


PROVIDER_BACKOFF = Backoff()  # between a provider's own retries of one request
OUTAGE_BACKOFF = Backoff(base_s=0.2, cap_s=5.0, jitter=0.5)  # held batches and probes


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now` (epoch): delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)
