"""Backoff: full jitter under an exponential ceiling; a server's Retry-After wins, capped."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from v10r.providers.retry import Backoff, parse_retry_after

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0)])
def test_jittered_delay_stays_under_the_exponential_ceiling(attempt, ceiling):
    rng = random.Random(7)
    delays = [Backoff().delay(attempt, rng=rng) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the range


def test_retry_after_is_honoured_and_capped():
    backoff = Backoff(retry_after_cap_s=60)
    assert backoff.delay(0, retry_after=7.0) == 7.0
    assert backoff.delay(0, retry_after=3600.0) == 60


@pytest.mark.parametrize(("header", "expected"), [
    ("3", 3.0), (" 0 ", 0.0), ("1.5", 1.5), ("-4", 0.0), (None, None), ("", None), ("soon", None),
])
def test_retry_after_seconds(header, expected):
    assert parse_retry_after(header, now=1_000_000.0) == expected


def test_retry_after_http_date():
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_a_streak_doubles_up_to_its_cap_and_starts_over_after_a_success():
    from v10r.providers.retry import Streak

    streak = Streak(Backoff(base_s=0.1, cap_s=0.5, jitter=0.0))
    assert [streak.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    streak.reset()
    assert streak.next() == 0.1
