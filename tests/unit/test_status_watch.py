"""`status --watch`: rate and ETA from successive samples, and "embedding" only on
evidence that a worker consumes."""

import pytest

from v10r.ops.watch import Observation, Trend, consuming, duration, state_of

pytestmark = pytest.mark.unit


def report(pending: int, *, applied: bool = True, up_to_date: bool = True,
           reembedding: dict | None = None) -> dict:
    return {"applied": applied, "up_to_date": up_to_date, "reembedding": reembedding,
            "counts": {"pending": pending, "current": 0}}


def test_rate_and_eta_over_the_window() -> None:
    trend = Trend(window_s=10)
    trend.add(Observation(0.0, 100, 50))
    assert trend.rate is None and trend.eta_s(10) is None  # one sample: no rate yet
    trend.add(Observation(2.0, 140, 30))
    assert trend.rate == 20.0 and trend.eta_s(100) == 5.0 and trend.queue_shrank
    for t in range(3, 30):
        trend.add(Observation(float(t), 140, 30))  # stalled for longer than the window
    assert trend.rate == 0.0 and trend.eta_s(100) is None and not trend.queue_shrank


def test_rate_never_negative_when_rows_turn_stale() -> None:
    trend = Trend()
    trend.add(Observation(0.0, 500))
    trend.add(Observation(1.0, 200))  # a model change made rows stale
    assert trend.rate == 0.0


def test_same_instant_samples_give_no_rate() -> None:
    trend = Trend()
    trend.add(Observation(5.0, 1))
    trend.add(Observation(5.0, 9))
    assert trend.rate is None


@pytest.mark.parametrize(("trend", "consumers", "expected"), [
    (None, None, False),
    (None, 0, False),
    (None, 2, True),
])
def test_consuming_needs_evidence(trend: Trend | None, consumers: int | None,
                                  expected: bool) -> None:
    assert consuming(trend, consumers) is expected


def test_a_shrinking_queue_or_progress_is_evidence() -> None:
    shrinking = Trend()
    shrinking.add(Observation(0.0, 0, 10))
    shrinking.add(Observation(1.0, 0, 4))
    assert consuming(shrinking, 0)
    idle = Trend()
    idle.add(Observation(0.0, 0, 10))
    idle.add(Observation(1.0, 0, 10))
    assert not consuming(idle, 0)


@pytest.mark.parametrize(("row", "active", "label"), [
    (report(0), False, "in sync"),
    (report(5), False, "stale (no worker?)"),
    (report(5), True, "embedding"),
    (report(5, applied=False), True, "not applied"),
    (report(5, up_to_date=False), True, "drifted"),
    (report(5, reembedding={"complete": False}), False, "re-embedding (no worker?)"),
    (report(5, reembedding={"complete": False}), True, "re-embedding"),
    (report(0, reembedding={"complete": True}), False, "ready to cut over"),
])
def test_state_labels(row: dict, active: bool, label: str) -> None:
    assert state_of(row, active)[0] == label


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0, "0s"), (59.4, "59s"), (95, "1m35s"), (3600 * 30 + 61, "30h01m")])
def test_durations_are_short(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_a_paused_breaker_line_from_a_workers_metrics() -> None:
    from v10r.cli.status import _paused_line

    line = ('v10r_paused{name="openai https://u:secret-pw@api.example.com/v1",'
            'reason="outage",service="provider"} 1.0')
    text = _paused_line(line)
    assert text.startswith("provider openai https://u:****@api.example.com/v1 paused")
    assert text.endswith("(outage)") and "secret-pw" not in text
