"""Rules the JSON Schema cannot express: across pipelines, and against pgvector's limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from v10r.spec.diagnostics import Diagnostic
from v10r.spec.model import MAX_HNSW_DIMENSIONS
from v10r.spec.secrets import literal_secrets

if TYPE_CHECKING:
    from v10r.spec.load import LoadedPipeline


def check_pipelines(loaded: list[LoadedPipeline]) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for item in loaded:
        diagnostics.extend(_check_one(item))
    diagnostics.extend(_check_unique(loaded))
    return diagnostics


def _at(item: LoadedPipeline, path: tuple[str | int, ...], message: str, rule: str,
        hint: str | None = None, level: str = "error") -> Diagnostic:
    line, col = item.positions.of_value(path) if item.positions else (1, 1)
    return Diagnostic(item.file, line, col, level, message, rule,  # type: ignore[arg-type]
                      ".".join(map(str, path)), hint, item.pipeline.name)


def _check_one(item: LoadedPipeline) -> Iterable[Diagnostic]:
    p = item.pipeline
    emb = p.embedding
    if p.target.index != "none":
        limit = MAX_HNSW_DIMENSIONS[p.target.type]
        if p.dimensions > limit:
            yield _at(item, ("embedding", "dimensions"),
                      f"pgvector's HNSW index supports at most {limit} dimensions for "
                      f"`{p.target.type}`, this pipeline has {p.dimensions}", "dimension-limit",
                      hint="use `target: {type: halfvec}` (up to 4000), fewer dimensions, or "
                      "`target: {index: none}`")
    if emb.provider == "local":
        for key in ("base_url", "api_key"):
            if getattr(emb, key) is not None:
                yield _at(item, ("embedding", key), f"provider `local` takes no `{key}`",
                          "unknown-option", hint="remove it, or pick provider `custom`")
        if emb.headers:
            yield _at(item, ("embedding", "headers"), "provider `local` takes no `headers`",
                      "unknown-option")
        if (emb.model, emb.dimensions) != ("all-MiniLM-L6-v2", 384):
            yield _at(item, ("embedding", "model"),
                      "provider `local` serves only all-MiniLM-L6-v2 with 384 dimensions",
                      "unknown-model", hint="serve other models through `infinity` or `custom`")
    if emb.send_dimensions and emb.provider == "local":
        yield _at(item, ("embedding", "send_dimensions"),
                  "`send_dimensions` applies to HTTP providers only", "unknown-option")
    for secret in literal_secrets(p):
        yield _at(item, secret.path, secret.message, "secret-literal", hint=secret.hint)
    if p.queue.kind != "kafka" and p.queue.partitions != 4:
        yield _at(item, ("queue", "partitions"), "`partitions` applies to the kafka queue only",
                  "unknown-option", level="warning")


def _check_unique(loaded: list[LoadedPipeline]) -> Iterable[Diagnostic]:
    names: dict[str, LoadedPipeline] = {}
    columns: dict[tuple[str, str, str, str], LoadedPipeline] = {}
    for item in loaded:
        p = item.pipeline
        first = names.setdefault(p.name, item)
        if first is not item:
            yield _at(item, ("name",), f"pipeline name `{p.name}` is already used in {first.file}",
                      "duplicate-pipeline", hint="pipeline names must be unique")
        target = (p.database.name, p.source.schema_name, p.source.table_name, p.embedding_column)
        owner = columns.setdefault(target, item)
        if owner is not item:
            yield _at(item, ("target", "column") if p.target.column else ("source", "columns"),
                      f"pipelines `{owner.pipeline.name}` and `{p.name}` both write column "
                      f"`{p.embedding_column}` of {p.source.table}", "duplicate-target",
                      hint="give one of them another `target.column`")
