"""What the Faust worker commits: never past an offset whose task is still in hand.

With two batches in flight, the later one can finish first. Its offsets must wait for
the earlier batch's before they are committed; otherwise a crash between the two loses
the earlier batch's tasks (the restarted worker starts after them). These are the real
consumer's commit decisions, on the offsets acked so far.
"""

from __future__ import annotations

from collections.abc import Iterator

import faust
import pytest
from faust.types import TP

from v10r.stream.consumer import MAX_ACKED_AHEAD, FetchWaitConsumer, FetchWaitTransport

pytestmark = pytest.mark.unit

PARTITION = TP("v10r.tasks.docs", 0)


@pytest.fixture
def consumer() -> Iterator[FetchWaitConsumer]:
    app = faust.App("v10r-commit-probe", broker="kafka://127.0.0.1:9")  # never connected
    transport = FetchWaitTransport(app.conf.broker_consumer, app)
    made = transport.create_consumer(callback=lambda message: None,
                                     on_partitions_revoked=lambda revoked: None,
                                     on_partitions_assigned=lambda assigned: None)
    assert isinstance(made, FetchWaitConsumer)
    yield made


def next_commit(consumer: FetchWaitConsumer, committed: int | None, acked: list[int],
                gap: tuple[int, int] | None = None) -> int | None:
    """`committed` is Kafka's: the next offset to read."""
    consumer._committed_offset[PARTITION] = committed
    consumer._acked[PARTITION] = list(acked)
    consumer._acked_index[PARTITION] = set(acked)
    consumer._gap[PARTITION].clear()
    if gap is not None:
        consumer._gap[PARTITION].addi(*gap)
    return consumer._new_offset(PARTITION)


@pytest.mark.parametrize(("committed", "acked", "gap", "expected"), [
    (10, [11, 12], None, None),  # offset 10 still in hand: stock Faust committed 13
    (10, [12, 13], None, None),
    (10, [10, 11, 13], None, 12),  # up to the first offset not acked
    (10, [10, 11, 12], None, 13),
    (10, [12], (10, 12), 13),  # offsets the log does not hold count as done
    (10, [13], (10, 12), 12),
], ids=["one-ahead", "two-ahead", "hole", "all", "gap-fills", "gap-then-hole"])
def test_a_commit_never_passes_an_offset_not_yet_acked(consumer, committed, acked, gap,
                                                       expected):
    assert next_commit(consumer, committed, acked, gap) == expected


def test_offsets_acked_ahead_are_committed_once_the_one_before_them_is(consumer):
    assert next_commit(consumer, 10, [11, 12]) is None
    assert next_commit(consumer, 10, [10, 11, 12]) == 13


def test_an_offset_never_acked_is_passed_after_a_bound_with_a_warning(consumer, caplog):
    """A record lost on the way in is never acked: commits must not wait for it forever
    (every later offset would stay in memory); the catch-up scan covers its row."""
    ahead = list(range(11, 11 + MAX_ACKED_AHEAD))
    assert next_commit(consumer, 10, ahead) == 11 + MAX_ACKED_AHEAD
    assert "offset 10 was not processed" in caplog.text
