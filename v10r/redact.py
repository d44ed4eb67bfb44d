"""Masking of secrets wherever they could be printed: DSNs, URLs, API keys."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "****"
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^\s:/@]*):([^\s@/]*)@", re.IGNORECASE)


def mask_url(url: str) -> str:
    """`postgresql://u:secret@h/db` → `postgresql://u:****@h/db`; also handles keyword DSNs."""
    if "://" not in url:
        return _PASSWORD_KV.sub(lambda m: m.group(1) + MASK, url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        query = _PASSWORD_KV.sub(lambda m: m.group(1) + MASK, parts.query)
        return urlunsplit(parts._replace(query=query))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    query = _PASSWORD_KV.sub(lambda m: m.group(1) + MASK, parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask passwords in any URL inside free text, and each known secret value."""
    text = _URL_IN_TEXT.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)
    text = _PASSWORD_KV.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control characters (terminal escape sequences, bidi overrides) shown as
    `\\x1b`-style escapes: text from outside (a provider's error, a forged key) must not
    drive the terminal that prints it."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
