"""Literal secrets in a spec: a spec is committed to git, so a secret may only be `${ENV}`.

Which parts of a DSN, URL or header are secrets is decided in `v10r.redact`, the same
place that masks them when printed, so what is masked and what is refused never drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from v10r.redact import header_secret, is_reference, mask_url, secret_spans
from v10r.spec.model import Pipeline

SpecPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LiteralSecret:
    path: SpecPath
    message: str
    hint: str


def literal_secrets(p: Pipeline) -> Iterable[LiteralSecret]:
    """Every secret position of `p` that holds anything but one `${VAR}` reference."""
    emb = p.embedding
    if emb.api_key is not None and not is_reference(emb.api_key):
        yield LiteralSecret(("embedding", "api_key"),
                            "the API key is written in the spec; it would be committed to git "
                            "(only a whole `${VAR}` is allowed here)",
                            "use an environment variable: `api_key: ${OPENAI_API_KEY}`")
    urls: list[tuple[SpecPath, str | None, str]] = [
        (("database", "dsn"), p.database.dsn, "DATABASE_URL"),
        (("database", "read_dsn"), p.database.read_dsn, "DATABASE_READ_URL"),
        (("embedding", "base_url"), emb.base_url, "EMBEDDING_URL"),
        (("queue", "url"), p.queue.url, "QUEUE_URL"),
    ]
    for path, url, variable in urls:
        if url and any(not is_reference(url[start:end]) for start, end in secret_spans(url)):
            what = "the DSN" if path[0] == "database" else f"`{'.'.join(map(str, path))}`"
            yield LiteralSecret(path, f"{what} holds a password ({mask_url(url)}); it would be "
                                "committed to git",
                                f"use `${{{variable}}}` for the whole URL, or `${{VAR}}` for its "
                                "password, and set it in the environment")
    for name, value in emb.headers.items():
        secret = header_secret(name, value)
        if secret is not None and not is_reference(secret.strip()):
            yield LiteralSecret(("embedding", "headers", name),
                                f"header `{name}` holds a literal credential; it would be "
                                "committed to git",
                                f"use an environment variable: `{name}: ${{API_TOKEN}}` (or "
                                "`Bearer ${API_TOKEN}`)")
