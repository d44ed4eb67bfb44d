"""Batched task messages: packing, the one decoder, and per-row settlement."""

from __future__ import annotations

import json

import pytest

from v10r.errors import QueueError
from v10r.queues.base import read_deliveries, settled_messages
from v10r.tasks import MAX_MESSAGE_ROWS, Task, pack, read_message, row_group

pytestmark = pytest.mark.unit


def tasks(ids, pipeline="p", origin="live"):
    return [Task(pipeline, "db", "public.t", i, "body", "body_embedding", origin=origin)
            for i in ids]


def test_a_message_carries_many_rows_and_reads_back_as_its_tasks():
    batch = tasks(range(250))
    messages = pack(batch)
    assert [m.rows for m in messages] == [MAX_MESSAGE_ROWS, MAX_MESSAGE_ROWS, 50]
    assert [t for m in messages for t in read_message(m.body)] == batch
    assert json.loads(messages[0].body)["v"] == 2


def test_rows_of_different_pipelines_or_origins_never_share_a_message():
    mixed = tasks([1, 2]) + tasks([3], pipeline="q") + tasks([4], origin="catchup")
    read = [read_message(m.body) for m in pack(mixed)]
    assert sorted(len(r) for r in read) == [1, 1, 2]
    assert all(len({t.header for t in r}) == 1 for r in read)


@pytest.mark.parametrize("groups", [1, 3, 4, 12])
def test_a_row_always_lands_in_the_same_group_whatever_it_is_published_with(groups):
    alone = {m.group for m in pack(tasks([42]), groups=groups)}
    for others in (range(10), range(100, 400), [42] * 3):
        with_others = [m for m in pack(tasks([*others, 42]), groups=groups)
                       if any(t.id == 42 for t in read_message(m.body))]
        assert {m.group for m in with_others} == alone
    assert all(0 <= row_group(t, groups) < groups for t in tasks(range(50)))


def test_a_version_1_single_key_message_is_still_read():
    old = (b'{"v":1,"pipeline":"p","database":"db","table":"public.t","id":7,'
           b'"text_column":"body","embedding_column":"body_embedding","origin":"catchup"}')
    assert read_message(old) == tasks([7], origin="catchup")


@pytest.mark.parametrize("raw", [
    (b'{"v":2,"pipeline":"p","database":"d","table":"t","text_column":"b",'
    b'"embedding_column":"e","ids":[]}'),
    (b'{"v":2,"pipeline":"p","database":"d","table":"t","text_column":"b",'
    b'"embedding_column":"e","ids":7}'),
    (b'{"v":2,"pipeline":1,"database":"d","table":"t","text_column":"b",'
    b'"embedding_column":"e","ids":[1]}'),
    b'{"v":3,"ids":[1]}', b'{"v":2}', b"[]"])
def test_a_malformed_batch_message_is_a_clear_queue_error(raw):
    with pytest.raises(QueueError, match="malformed task message|not supported"):
        read_message(raw)


def test_a_dead_letter_or_retry_body_names_its_row_alone():
    [task] = tasks([9])
    assert read_message(task.to_json()) == [task]
    with pytest.raises(QueueError, match="2 rows"):
        Task.from_json(pack(tasks([1, 2]))[0].body)


def test_a_message_is_settled_once_with_its_last_row_whatever_the_order():
    [message] = pack(tasks(range(5)))
    rows = read_deliveries(message.body, 1, "handle")
    assert len(rows) == 5
    assert settled_messages(rows[:2]) == []
    assert settled_messages(rows[:2]) == []  # settling a row twice does not count twice
    assert settled_messages(rows[4:]) == []
    assert settled_messages(rows) == ["handle"]
    assert settled_messages(rows) == []


def test_an_unreadable_message_is_one_delivery_settled_at_once():
    [bad] = read_deliveries(b"{oops", 3, "h")
    assert bad.task is None and bad.error and bad.attempts == 3 and bad.body == b"{oops"
    assert settled_messages([bad]) == ["h"]


def test_a_faust_event_of_a_batched_message_is_one_incoming_per_row():
    from v10r.stream.runtime import incoming

    class Event:  # what `incoming` reads of a Faust event
        def __init__(self, value: bytes) -> None:
            self.value = value
            self.message = type("M", (), {"headers": [("attempts", b"2")], "timestamp": 5.0})

    batch = tasks(range(7))
    rows = incoming(Event(pack(batch)[0].body))
    assert [r.task for r in rows] == batch
    assert {(r.attempts, r.published_at) for r in rows} == {(2, 5.0)}
