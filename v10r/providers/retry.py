"""When to try a provider again: exponential backoff with full jitter, and `Retry-After`.

Full jitter (a uniform delay in [0, base·2^attempt]) spreads the retries of many
workers hit by the same outage, instead of having them return in lockstep.
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

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * 2**attempt)
        jittered = (rng or random).uniform(0, ceiling)
        if retry_after is None:
            return jittered
        return min(max(retry_after, 0.0), self.retry_after_cap_s)


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
