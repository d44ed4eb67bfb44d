"""How v10r logs: text lines or one JSON object per event, masked either way.

One home for the log set-up of every process (the CLI's commands and the Faust worker,
which reads `$V10R_LOG_FORMAT` because it takes no options of ours). Structured fields
travel as `extra={"fields": {...}}` on a record: JSON shows them as keys, so a log
pipeline can filter on `pipeline` or `duration_ms`; text shows the message alone, which
already says the same in words.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from v10r.redact import MaskingFormatter, mask_text

ENV_FORMAT = "V10R_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_LAYOUT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {0: logging.WARNING, 1: logging.INFO}

# Keys a record's fields may not take: they would shadow the event's own.
_RESERVED = frozenset({"ts", "level", "logger", "message", "error"})


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call whose values a JSON log shows as keys."""
    return {"fields": values}


def _outage_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "a service is unreachable", from the clients installed."""
    found: list[type[BaseException]] = [OSError]
    for module, names in (("asyncpg", ("PostgresConnectionError", "CannotConnectNowError")),
                          ("asyncpg.exceptions", ("AdminShutdownError",)),
                          ("aiohttp", ("ClientConnectionError",)),
                          ("redis.exceptions", ("ConnectionError", "TimeoutError")),
                          ("aiokafka.errors", ("KafkaConnectionError",)),
                          ("aiormq.exceptions", ("AMQPConnectionError",))):
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(loaded, n) for n in names if hasattr(loaded, n)]
    return tuple(found)


def without_outage_traceback(record: logging.LogRecord) -> logging.LogRecord:
    """A record whose exception is an expected outage (a library logging "connection
    refused" with its stack), as one line: the message and the error, no traceback."""
    global _OUTAGES
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None:
        return record
    if _OUTAGES is None:
        _OUTAGES = _outage_types()
    if not isinstance(exc, _OUTAGES):
        return record
    line = logging.makeLogRecord(record.__dict__)
    line.msg, line.args = f"{record.getMessage()}: {type(exc).__name__}: {exc}", None
    line.exc_info, line.exc_text = None, None
    return line


_OUTAGES: tuple[type[BaseException], ...] | None = None


class TextFormatter(MaskingFormatter):
    """Masked text lines; an expected outage's traceback becomes one line."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(without_outage_traceback(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, ASCII only (so no control character reaches a
    terminal), with every string masked like a text log line."""

    def format(self, record: logging.LogRecord) -> str:
        record = without_outage_traceback(record)
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                if str(key) not in _RESERVED:
                    event[str(key)] = _masked(value)
        if record.exc_info:
            event["error"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            event["error"] = mask_text(record.exc_text)
        return json.dumps(event, default=str, ensure_ascii=True)


def _masked(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return mask_text(str(value))


class QuietRepeats(logging.Filter):
    """A library's line repeated while a service is down (a pool retrying every second)
    is shown once per `every_s` seconds; v10r's own lines always pass."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("v10r") or record.levelno >= logging.ERROR:
            return True
        key = (record.name, record.msg)
        last = self._last.get(key)
        if last is not None and record.created - last < self.every_s:
            return False
        if len(self._last) > 1_000:  # bounded, whatever the libraries log
            self._last.clear()
        self._last[key] = record.created
        return True


def log_format(requested: str | None = None) -> str:
    """The format asked for, else `$V10R_LOG_FORMAT`, else text; unknown values are text."""
    chosen = (requested or os.environ.get(ENV_FORMAT) or "text").strip().lower()
    return chosen if chosen in FORMATS else "text"


def make_formatter(fmt: str | None = None, **_ignored: Any) -> logging.Formatter:
    """The formatter of `fmt` (see `log_format`); also the factory Faust's
    `logging_config` names, which may pass keys of its own."""
    if log_format(fmt) == "json":
        return JsonFormatter()
    return TextFormatter(TEXT_LAYOUT)


def configure(verbosity: int, fmt: str | None = None) -> None:
    """Root logging to stderr at -v (info) / -vv (debug), in the chosen format; the
    format is exported so processes started from here log the same way."""
    global _HANDLER
    chosen = log_format(fmt)
    os.environ[ENV_FORMAT] = chosen
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(chosen))
    handler.addFilter(QuietRepeats())
    root = logging.getLogger()
    if _HANDLER is not None:  # configured again (an option after the command): replace ours
        root.removeHandler(_HANDLER)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(verbosity, logging.DEBUG))
    _HANDLER = handler


_HANDLER: logging.Handler | None = None


def faust_logging_config() -> dict[str, Any]:
    """Faust's `logging_config`: its handlers keep their place, our formatter masks."""
    ours = {"()": "v10r.ops.logs.make_formatter"}
    return {"version": 1, "merge": True, "disable_existing_loggers": False,
            "formatters": {"default": ours, "colored": ours}}
