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
        raise ValueError(f"cannot use {text}")
    except ValueError as exc:
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


def _failing(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return record("Failed to restore the pool connection floor; retrying", exc=caught)


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    TimeoutError("timed out"),
])
def test_an_expected_outage_is_one_line_without_traceback(exc: BaseException) -> None:
    text = make_formatter("text").format(_failing(exc))
    assert "Traceback" not in text and "\n" not in text
    assert "retrying: " in text and type(exc).__name__ in text
    event = json.loads(JsonFormatter().format(_failing(exc)))
    assert "error" not in event and type(exc).__name__ in event["message"]


def test_a_bug_keeps_its_traceback() -> None:
    text = make_formatter("text").format(_failing(KeyError("pipeline")))
    assert "Traceback" in text and "KeyError" in text


def test_a_librarys_repeated_line_is_shown_once_a_minute_ours_always() -> None:
    from v10r.ops.logs import QuietRepeats

    quiet = QuietRepeats(every_s=60)
    lines = []
    for second in range(0, 130, 1):
        rec = record("Failed to restore the pool connection floor; retrying")
        rec.name, rec.created = "asyncpg.pool", 1000.0 + second
        lines.append(quiet.filter(rec))
    assert sum(lines) == 3  # at 0, 60 and 120 s
    ours = record("paused: database unreachable")
    assert all(quiet.filter(ours) for _ in range(5))


def test_the_one_line_of_an_outage_is_masked_too() -> None:
    exc = ConnectionRefusedError(111, f"cannot reach postgresql://app:{SECRET}@db/x")
    assert SECRET not in make_formatter("text").format(_failing(exc))
    assert SECRET not in JsonFormatter().format(_failing(exc))
