"""JSON and text log lines: one object per event, masked, terminal-safe."""

import json
import logging

import pytest

from v10r.ops.logs import JsonFormatter, fields, log_format, make_formatter
from v10r.redact import MaskingFormatter

pytestmark = pytest.mark.unit

SECRET = "hunter2secret"


def record(message: str, *args: object, extra: dict | None = None,
           exc: BaseException | None = None) -> logging.LogRecord:
    rec = logging.LogRecord("v10r.work", logging.WARNING, __file__, 1, message, args,
                            (type(exc), exc, exc.__traceback__) if exc else None)
    for key, value in (extra or {}).items():
        setattr(rec, key, value)
    return rec


def test_one_json_object_per_event_with_the_structured_fields() -> None:
    line = JsonFormatter().format(record(
        "pipeline %s: batch of %d row(s)", "docs", 3,
        extra=fields(pipeline="docs", table="public.docs", batch_size=3, duration_ms=12.5,
                     keys=[1, 2, 3], queue="redis")))
    event = json.loads(line)
    assert "\n" not in line
    assert event["level"] == "warning" and event["logger"] == "v10r.work"
    assert event["message"] == "pipeline docs: batch of 3 row(s)"
    assert event["ts"].endswith("+00:00")
    assert (event["pipeline"], event["table"], event["batch_size"], event["duration_ms"],
            event["keys"], event["queue"]) == ("docs", "public.docs", 3, 12.5, [1, 2, 3],
                                               "redis")


@pytest.mark.parametrize("text", [
    f"postgresql://app:{SECRET}@db:5432/x",
    f"host=db password={SECRET} dbname=x",
    f"Authorization: Bearer {SECRET}",
    f"https://api.example.com/v1?api_key={SECRET}",
])
def test_json_masks_messages_fields_and_tracebacks_like_text(text: str) -> None:
    try:
        raise ConnectionError(f"cannot connect to {text}")
    except ConnectionError as exc:
        rec = record("connect failed: %s", text, extra=fields(dsn=text, nested=[text]), exc=exc)
    line = JsonFormatter().format(rec)
    assert SECRET not in line
    event = json.loads(line)
    assert "****" in event["message"] and "****" in event["dsn"] and "****" in event["error"]
    assert "Traceback" in event["error"]
    assert SECRET not in MaskingFormatter("%(message)s").format(rec)


def test_control_characters_and_unicode_never_reach_the_terminal_raw() -> None:
    line = JsonFormatter().format(record("row %s", "a\x1b[31mred\u202eb\r\nc"))
    assert line.isascii() and "\x1b" not in line and "\r" not in line and "\n" not in line
    assert json.loads(line)["message"] == "row a\x1b[31mred\u202eb\r\nc"


def test_fields_cannot_shadow_the_events_own_keys() -> None:
    event = json.loads(JsonFormatter().format(record("real", extra=fields(
        message="forged", level="debug", ts="then", pipeline="docs"))))
    assert (event["message"], event["level"], event["pipeline"]) == ("real", "warning", "docs")


def test_unknown_or_empty_formats_mean_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("V10R_LOG_FORMAT", raising=False)
    assert log_format() == "text" and log_format("JSON ") == "json"
    monkeypatch.setenv("V10R_LOG_FORMAT", "yaml")
    assert log_format() == "text"
    monkeypatch.setenv("V10R_LOG_FORMAT", "json")
    assert isinstance(make_formatter(), JsonFormatter)
    assert isinstance(make_formatter("text", fmt_ignored=1), MaskingFormatter)
