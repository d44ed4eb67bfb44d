"""Rules the JSON Schema cannot express: across pipelines, and against pgvector's limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from v10r.spec.columns import read_columns, table_of, written_columns
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
    diagnostics.extend(_check_columns(loaded))
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
    for item in loaded:
        first = names.setdefault(item.pipeline.name, item)
        if first is not item:
            yield _at(item, ("name",), f"pipeline name `{item.pipeline.name}` is already used "
                      f"in {first.file}", "duplicate-pipeline",
                      hint="pipeline names must be unique")


def _check_columns(loaded: list[LoadedPipeline]) -> Iterable[Diagnostic]:
    """No pipeline writes a column that another (or itself) writes or reads on one table."""
    by_table: dict[tuple[str, str, str], list[LoadedPipeline]] = {}
    for item in loaded:
        by_table.setdefault(table_of(item.pipeline), []).append(item)
        yield from _own_columns(item)
    for group in by_table.values():
        for i, first in enumerate(group):
            for second in group[i + 1:]:
                yield from _shared_columns(first, second)


def _own_columns(item: LoadedPipeline) -> Iterable[Diagnostic]:
    read = {use.column: use for use in read_columns(item.pipeline)}
    for use in written_columns(item.pipeline):
        if use.column in read:
            yield _at(item, _target_path(item),
                      f"pipeline `{item.pipeline.name}` would write its {use.role} "
                      f"`{use.column}`, which is also its {read[use.column].role}",
                      "column-conflict", hint="set `target.column` to a name not used by the "
                      "table's data")
            return


def _shared_columns(first: LoadedPipeline, second: LoadedPipeline) -> Iterable[Diagnostic]:
    """One diagnostic at each of the two pipelines, naming the other, for their conflict."""
    pair = (first, second)
    uses = [({u.column: u.role for u in written_columns(item.pipeline)},
             {u.column: u.role for u in read_columns(item.pipeline)}) for item in pair]
    conflict = _conflict(0, uses) or _conflict(1, uses)
    if conflict is None:
        return
    column, writer, roles, both_write = conflict
    a, b = first.pipeline, second.pipeline
    what = (f"pipelines `{a.name}` and `{b.name}` both write column `{column}` of "
            f"{a.source.table}" if both_write else f"pipeline `{pair[writer].pipeline.name}` "
            f"would overwrite column `{column}` of {a.source.table}, which the other reads")
    for me in (0, 1):
        item, peer = pair[me], pair[1 - me]
        line, col = _position(peer)
        yield _at(item, _target_path(item),
                  f"{what}: it is the {roles[me]} of `{item.pipeline.name}` and the "
                  f"{roles[1 - me]} of `{peer.pipeline.name}` ({peer.file}:{line}:{col})",
                  "duplicate-target", hint="give one of them another `target.column`; v10r "
                  "also writes `<column>_model`, `_hash`, `_at` and `_note` beside it")


def _conflict(writer: int, uses: list[tuple[dict[str, str], dict[str, str]]]
              ) -> tuple[str, int, list[str], bool] | None:
    """The first column pipeline `writer` (0 or 1) writes that the other writes or reads."""
    written, _ = uses[writer]
    other_written, other_read = uses[1 - writer]
    for column, role in written.items():
        for other, both_write in ((other_written, True), (other_read, False)):
            if column in other:
                roles = [role, other[column]] if writer == 0 else [other[column], role]
                return column, writer, roles, both_write
    return None


def _target_path(item: LoadedPipeline) -> tuple[str, ...]:
    return ("target", "column") if item.pipeline.target.column else ("source", "columns")


def _position(item: LoadedPipeline) -> tuple[int, int]:
    return item.positions.of_value(_target_path(item)) if item.positions else (1, 1)
