"""What may be printed: secrets masked, and untrusted text made harmless for a terminal.

One home for "which part of this string is a secret": the masking of errors, plans and
logs and the spec check that refuses literal secrets both ask `secret_spans`, so a form
masked here is also a form that must come from `${ENV}`. Nothing here raises: masking
runs on error paths, where a malformed DSN is the normal case.

Text v10r does not control (table names, row keys, provider and database errors) may
hold rich markup (`[/]` crashes rich) or terminal control sequences (ESC, C1, `\\r`,
which can rewrite what an operator sees): print it through `safe` (rich) or
`printable` (plain text).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from rich.markup import escape

MASK = "****"

# Keys whose value is a secret: libpq's `password`/`sslpassword`, and the usual API forms.
_SECRET_KEY = re.compile(
    r"(?:ssl|sentinel_)?password|passwd|pwd|pass|secret|client[_-]?secret|token|access[_-]?token|"
    r"api[_-]?key|apikey|key|auth|authorization|sig|signature",
    re.IGNORECASE,
)
_KEYWORD_DSN = re.compile(r"^\s*[A-Za-z_]+\s*=")
_KEYWORD = re.compile(r"([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]*)")
_PURE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-)?\}")

# Free text: URLs with a password (any scheme, or none), `key=value` secrets, tokens.
# Runs that a failed match rescans are bounded, so masking stays linear on any input.
_URL_IN_TEXT = re.compile(
    r"(?P<head>(?:(?:\b[a-z][a-z0-9+.-]{0,31}:)?//|(?<![\w@:/.%+${}=-]))"
    r"(?:\$\{[^}\s]{0,64}\}|[^\s:/@'\"${}=]){0,128}):"
    r"(?P<secret>[^\s@/'\"]{1,512})@(?=[\w\[\].${-])", re.IGNORECASE)
_KV_IN_TEXT = re.compile(
    r"(?P<head>\b(?:ssl|sentinel_)?password\s*=\s*|[?&;](?:ssl|sentinel_)?password=|"
    r"[?&;](?:api[_-]?key|apikey|key|token|access_token|secret|client_secret|sig)=)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;'\"]+)", re.IGNORECASE)
_HEADER_IN_TEXT = re.compile(
    r"(?P<head>\bbearer\s+|\b(?:x-)?api[-_]?key[\"']?\s*[:=]\s*[\"']?|"
    r"\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?)"
    r"(?P<secret>(?!\*{4})[A-Za-z0-9._~+/=:-]{6,})", re.IGNORECASE)
_CREDENTIAL_HEADER = re.compile(
    r"auth|key|token|secret|passw|cookie|session|credential|signature", re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"\s*(?:bearer|basic|token|digest|apikey)\s+", re.IGNORECASE)
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}")


def _outside_references(text: str, start: int, stops: str) -> int:
    """Index of the first char in `stops` at or after `start`, skipping `${...}`."""
    i = start
    while i < len(text):
        if text.startswith("${", i):
            end = text.find("}", i)
            i = len(text) if end < 0 else end + 1
            continue
        if text[i] in stops:
            return i
        i += 1
    return len(text)


def _last_outside_references(text: str, char: str) -> int:
    """Index of the last `char` in `text` that is not inside a `${...}`, or -1."""
    found, i = -1, 0
    while (i := _outside_references(text, i, char)) < len(text):
        found, i = i, i + 1
    return found


def secret_spans(dsn: str) -> list[tuple[int, int]]:
    """(start, end) of every secret in a URL (with or without scheme) or keyword DSN.

    Secrets are the password of the userinfo (`u:secret@host`), and the values of
    secret-like keywords or query parameters (`password=`, `sslpassword=`, `api_key=`…).
    `${VAR}` references are treated as opaque, so `${HOST:-db}` never looks like a port.
    """
    if _KEYWORD_DSN.match(dsn) and "://" not in dsn:
        return [m.span(2) for m in _KEYWORD.finditer(dsn) if _SECRET_KEY.fullmatch(m.group(1))]
    scheme = dsn.find("://")
    start = scheme + 3 if scheme >= 0 and _outside_references(dsn, 0, "/?#") > scheme else (
        2 if dsn.startswith("//") else 0)
    end = _outside_references(dsn, start, "/?#")
    spans: list[tuple[int, int]] = []
    at = _last_outside_references(dsn[start:end], "@")
    if at >= 0:
        colon = _outside_references(dsn, start, ":")
        if colon < start + at:
            spans.append((colon + 1, start + at))
    query = _outside_references(dsn, end, "?")
    if query < len(dsn):
        pos = query + 1
        while pos < len(dsn):
            stop = _outside_references(dsn, pos, "&#")
            key, eq, _ = dsn[pos:stop].partition("=")
            if eq and _SECRET_KEY.fullmatch(key.strip()):
                spans.append((pos + len(key) + 1, stop))
            if stop >= len(dsn) or dsn[stop] == "#":
                break
            pos = stop + 1
    return spans


def mask_url(url: str) -> str:
    """`postgresql://u:secret@h/db` → `postgresql://u:****@h/db`; every form of
    `secret_spans` (no scheme, keyword DSN, query parameters) and anything left in text."""
    try:
        masked = url
        for start, end in sorted(secret_spans(url), reverse=True):
            if not is_reference(url[start:end]):
                masked = masked[:start] + MASK + masked[end:]
        return mask_text(masked)
    except Exception:  # noqa: BLE001 - masking must never raise on an error path
        return MASK


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask passwords in URLs, `password=`/`api_key=` values, auth headers, API-key-shaped
    tokens and each known secret value, anywhere in free text."""
    try:
        for secret in sorted(secrets, key=len, reverse=True):
            if secret and len(secret) >= 4:
                text = text.replace(secret, MASK)
        text = _URL_IN_TEXT.sub(_masked_group, text)
        text = _KV_IN_TEXT.sub(_masked_group, text)
        text = _HEADER_IN_TEXT.sub(_masked_group, text)
        return _KEY_LIKE.sub(MASK, text)
    except Exception:  # noqa: BLE001 - masking must never raise on an error path
        return MASK


def _masked_group(match: re.Match[str]) -> str:
    secret = match.group("secret")
    if MASK in secret or is_reference(secret.strip("'")):
        return match.group(0)
    return match.group("head") + (MASK if match.re is not _URL_IN_TEXT else f":{MASK}@")


def is_reference(value: str) -> bool:
    """Whether `value` is exactly one `${VAR}` (or `${VAR:-}`): the only form a secret may take."""
    return _PURE_REFERENCE.fullmatch(value) is not None


def header_secret(name: str, value: str) -> str | None:
    """The credential part of an HTTP header (`Authorization: Bearer <this>`), or None
    for a header that carries none (`OpenAI-Organization`, `Content-Type`)."""
    scheme = _AUTH_SCHEME.match(value)
    if scheme or _CREDENTIAL_HEADER.search(name) or _KEY_LIKE.search(value):
        return value[scheme.end():] if scheme else value
    return None


def url_password(url: str) -> str:
    """The literal password of a URL or DSN (to mask it where it appears alone), or ''."""
    spans = secret_spans(url)
    return url[spans[0][0]:spans[0][1]] if spans else ""


class MaskingFormatter(logging.Formatter):
    """Log records (and their tracebacks) with every credential masked, since a library's
    log line or exception text may quote a DSN, URL or header, and control characters
    shown as escapes."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(mask_text(super().format(record)))


# C0 controls except tab and newline, DEL, C1 controls, and the Unicode line separators
# and bidi overrides that reorder what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: Any) -> str:
    """`text` with every control character shown as a visible `\\xNN` / `\\uNNNN` escape."""
    return _UNPRINTABLE.sub(_visible, str(text))


def safe(text: Any) -> str:
    """`text` as rich markup that prints exactly as written: no styles, no control codes."""
    return escape(printable(text))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
