"""Notification payloads are hints from anyone: only what v10r's trigger sends passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from v10r.keys import ColumnType
from v10r.listen.payload import (
    MAX_PAYLOAD_CHARS,
    DropLog,
    InvalidNotification,
    dedup_key,
    read_notification,
)
from v10r.listen.targets import Target
from v10r.redact import printable
from v10r.spec.model import Pipeline
from v10r.work.vectors import vector_problems

pytestmark = pytest.mark.unit


def target(table: str = "docs", key: str | list[str] = "id", name: str = "p") -> Target:
    return Target.of(Pipeline.model_validate({
        "name": name, "database": {"name": "db", "dsn": "postgresql://localhost/db"},
        "source": {"table": f"public.{table}", "key": key, "columns": ["body"]},
        "embedding": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1",
                      "model": "m", "dimensions": 3}}))


DOCS = target()
TYPES = {"p": (ColumnType("id", "integer", "pg_catalog", "int4", "int4"),)}


def read(payload: str, targets=(DOCS,), types=TYPES):
    return read_notification(payload, list(targets), types)


def test_the_triggers_payloads_pass():
    notice = read('{"id": 7, "table": "public.docs"}')
    assert notice.keys == (7,) and notice.targets == (DOCS,) and not notice.scan
    assert read('{"scan": true, "table": "public.docs"}').scan


HOSTILE = [
    ('{"id": "x1", "table": "public.docs"}', "needs an integer"),
    ('{"id": 2147483648, "table": "public.docs"}', "needs an integer"),
    ('{"id": -2147483649, "table": "public.docs"}', "needs an integer"),
    ('{"id": 1.5, "table": "public.docs"}', "needs an integer"),
    ('{"id": null, "table": "public.docs"}', "no value"),
    ('{"table": "public.docs"}', "no id"),
    ('{"id": {"id": 1}, "table": "public.docs"}', "single value"),
    ('{"id": [1, 2], "table": "public.docs"}', "single value"),
    ('{"id": 1, "table": "public.other"}', "not the channel's table"),
    ('{"id": 1, "table": ["public.docs"]}', "not the channel's table"),
    ('{"id": 1}', "not the channel's table"),
    ('{"id": 1, "table": "public.docs", "pipeline": "admin"}', "not an object"),
    ('[1, 2]', "not an object"),
    ('"just text"', "not an object"),
    ("7", "not an object"),
    ("not json", "not JSON"),
    ("", "not JSON"),
    ('{"id": NaN, "table": "public.docs"}', "not JSON"),
    ("[" * 5000 + "]" * 5000, "characters"),
    ("[" * 3000, "not JSON"),
    ("[" * 3900 + "]" * 3900, "not JSON"),
    ('{"id": ' + "9" * 4400 + ', "table": "public.docs"}', "characters|not JSON"),
    ("x" * (1 << 20), "characters"),
    ('{"scan": "yes", "table": "public.docs"}', "scan must be true"),
    ('{"scan": true, "id": 1, "table": "public.docs"}', "scan must be true"),
]


@pytest.mark.parametrize(("payload", "reason"), HOSTILE, ids=[r for _, r in HOSTILE])
def test_forged_payloads_are_refused(payload, reason):
    with pytest.raises(InvalidNotification, match=reason):
        read(payload)


def test_composite_keys_need_exactly_their_columns():
    pair = target(key=["a", "b"])
    types = {"p": (ColumnType("a", "bigint", "pg_catalog", "int8", "int8"),
                   ColumnType("b", "uuid", "pg_catalog", "uuid", "uuid"))}
    uid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    ok = read(json.dumps({"id": {"b": uid, "a": 1}, "table": "public.docs"}), [pair], types)
    assert ok.keys == ({"a": 1, "b": uid},)
    for forged in ({"a": 1}, {"a": 1, "b": uid, "c": 3}, {"a": 1, "b": "zz"}, 1,
                   {"a": "1", "b": uid}, {"a": None, "b": uid}):
        with pytest.raises(InvalidNotification):
            read(json.dumps({"id": forged, "table": "public.docs"}), [pair], types)


def test_without_key_types_the_shape_is_still_checked():
    assert read('{"id": 5, "table": "public.docs"}', types={}).keys == (5,)
    with pytest.raises(InvalidNotification):
        read('{"id": {"x": 1}, "table": "public.docs"}', types={})


def test_the_payloads_table_only_selects_among_the_channels_pipelines():
    other = target("other", name="q")
    notice = read('{"id": 1, "table": "public.other"}', [DOCS, other])
    assert notice.targets == (other,)


def test_the_payload_limit_is_postgresqls():
    assert MAX_PAYLOAD_CHARS == 8000


def test_refusals_are_counted_and_logged_at_most_once_per_interval():
    now = [0.0]
    lines: list[str] = []
    drops = DropLog(lines.append, interval_s=10, clock=lambda: now[0])
    for _ in range(1000):
        drops.drop("v10r_docs", '{"id": "\x1b[2Jx"}', "needs an integer")
    now[0] = 11
    drops.drop("v10r_docs", "{}", "no id")
    assert drops.dropped == 1001 and len(lines) == 2
    assert "ignored 1 notification" in lines[0] and "ignored 1000 notification" in lines[1]
    assert "\x1b" not in "".join(lines)


def test_dedup_keys_tell_types_apart():
    assert dedup_key(1) == 1 and dedup_key("1") == "1" and dedup_key(1) != dedup_key("1")
    assert dedup_key({"b": 1, "a": 2}) == dedup_key({"a": 2, "b": 1})
    assert dedup_key(True) != dedup_key(1)


def test_vectors_are_judged_per_row():
    matrix = np.array([[1, 0], [0, 0], [np.nan, 1], [np.inf, 1], [1e5, 1], [65504, 1]],
                      dtype=np.float32)
    problems = vector_problems(matrix, "halfvec")
    assert problems[0] is None and problems[5] is None
    assert "all-zero" in problems[1] and "NaN" in problems[2] and "NaN" in problems[3]
    assert "100000" in problems[4] and "halfvec" in problems[4]
    assert vector_problems(matrix, "vector")[4] is None


def test_control_characters_are_shown_escaped():
    assert printable("a\x1b[2J\x07b\u202ec\x9b") == "a\\x1b[2J\\x07b\\u202ec\\x9b"
    assert printable("ünïcödé ✓") == "ünïcödé ✓"
