"""The pure parts of the worker runtime: settling outcomes, counting them, classifying
failures, and the one backoff policy."""

from __future__ import annotations

import random

import asyncpg
import pytest

from v10r.errors import (
    ConnectionFailed,
    PlanError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
)
from v10r.providers.retry import OUTAGE_BACKOFF, Backoff
from v10r.work.breaker import Breakers, failure_kind
from v10r.work.core import BatchOutcome, Status, TaskOutcome
from v10r.work.settle import Counters, count, plan_settlement

pytestmark = pytest.mark.unit

OK = TaskOutcome(Status.WRITTEN)
SAME = TaskOutcome(Status.UNCHANGED)
BUSY = TaskOutcome(Status.FAILED, "busy", retryable=True)
BAD = TaskOutcome(Status.FAILED, "bad input", retryable=False)


@pytest.mark.parametrize(("outcomes", "attempts", "done", "retry", "dead"), [
    ([OK, SAME], [1, 1], [0, 1], {}, {}),
    ([BUSY], [1], [], {"busy": [0]}, {}),
    ([BUSY], [3], [], {}, {"busy (after 3 attempts)": [0]}),
    ([BUSY], [9], [], {}, {"busy (after 9 attempts)": [0]}),  # over the limit: never again
    ([BAD], [1], [], {}, {"bad input": [0]}),  # never passes: at once
    ([OK, BUSY, BAD, BUSY], [1, 2, 1, 3], [0], {"busy": [1]},
     {"bad input": [2], "busy (after 3 attempts)": [3]}),
    ([], [], [], {}, {}),
], ids=["done", "retry", "spent", "over-limit", "fatal", "mixed", "empty"])
def test_each_outcome_is_settled_exactly_once(outcomes, attempts, done, retry, dead):
    plan = plan_settlement(BatchOutcome(outcomes), attempts, max_attempts=3)
    assert (plan.done, plan.retry, plan.dead) == (done, retry, dead)
    settled = plan.done + [i for g in (*plan.retry.values(), *plan.dead.values()) for i in g]
    assert sorted(settled) == list(range(len(outcomes)))


def test_counts_mean_the_same_in_every_runtime():
    outcome = BatchOutcome([OK, SAME, BUSY, BAD])
    counted = count(outcome, plan_settlement(outcome, [1, 1, 1, 1], max_attempts=3))
    assert counted == Counters(processed=2, written=1, skipped=1, retried=1, dead_lettered=1,
                               batches=1)
    total = Counters().add(counted).add(counted)
    assert total.processed == 4 and total.batches == 2


def test_counters_read_records_of_earlier_releases():
    assert Counters.from_dict({"processed": "3", "failed": 2, "unknown": 9}) == Counters(
        processed=3, dead_lettered=2)
    assert Counters.from_dict(Counters(retried=4).as_dict()) == Counters(retried=4)


@pytest.mark.parametrize(("error", "kind"), [
    (ProviderError("cannot connect (ConnectError)", retryable=True), "outage"),
    (ProviderError("server error (HTTP 503)", retryable=True), "outage"),
    (ProviderError("rate limited (HTTP 429)", retryable=True, retry_after=3), "outage"),
    (ProviderError("request timed out", retryable=True), "outage"),
    (ProviderAuthError("authentication failed (HTTP 401)"), "auth"),
    (ProviderUnavailable("cannot reach the provider"), "outage"),
    (ProviderError("request refused (HTTP 400): too long"), "task"),
    (ConnectionFailed("cannot connect to db"), "outage"),
    (asyncpg.PostgresConnectionError("gone"), "outage"),
    (TimeoutError(), "outage"),
    (OSError("refused"), "outage"),
    (PlanError("column does not exist"), "task"),
    (ValueError("a bug"), "task"),
])
def test_failures_are_classified_in_one_place(error, kind):
    assert failure_kind(error) == kind


def test_an_auth_error_is_auth_whatever_its_message_or_retry_flag():
    assert failure_kind(ProviderAuthError("HTTP 403", retryable=True)) == "auth"


@pytest.mark.parametrize("attempt", [0, 1, 5, 40, 10_000])
def test_backoff_is_capped_and_jitter_keeps_a_floor(attempt):
    rng = random.Random(attempt)
    delays = [OUTAGE_BACKOFF.delay(attempt, rng=rng) for _ in range(100)]
    ceiling = min(OUTAGE_BACKOFF.cap_s, OUTAGE_BACKOFF.base_s * 2 ** min(attempt, 32))
    assert all(ceiling * (1 - OUTAGE_BACKOFF.jitter) <= d <= ceiling for d in delays)
    assert Backoff(jitter=0).delay(attempt) == min(30.0, 0.5 * 2 ** min(attempt, 32))


def test_retry_after_wins_but_is_capped():
    assert Backoff().delay(7, retry_after=2.0) == 2.0
    assert Backoff(retry_after_cap_s=10).delay(0, retry_after=1e9) == 10
    assert Backoff().delay(0, retry_after=-5) == 0.0


def test_breaker_state_is_readable_and_never_holds_a_dsn():
    breakers = Breakers()
    breaker = breakers.get("database", "main", "postgresql://u:hunter2@db/x")
    breaker.open("outage", ConnectionFailed("cannot connect to db"))
    [(key, state)] = breakers.snapshot().items()
    assert "hunter2" not in key and state["paused"] and state["kind"] == "outage"
    assert state["reason"] == "cannot connect to db" and state["since"]
    [paused, _since] = breakers.samples()
    assert (paused.name, paused.value, paused.kind) == ("paused", 1.0, "gauge")
    breaker.close()
    assert not breakers.snapshot()[key]["paused"] and breakers.samples()[0].value == 0.0
