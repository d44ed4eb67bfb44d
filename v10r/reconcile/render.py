"""A plan for people (rich text) and for scripts (JSON). The same operations `apply` runs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.text import Text

from v10r.reconcile.diff import DatabasePlan, PipelinePlan
from v10r.reconcile.ops import Operation, destructive, op_kind
from v10r.reconcile.plan import Plan
from v10r.redact import printable, safe

ACTION_STYLE = {"create": "green", "alter": "yellow", "unchanged": "dim", "drop": "red",
                "removed": "magenta", "other": "dim"}


def destructive_listing(operations: Iterable[Operation]) -> str:
    """The destructive operations, one per line: `plan` shows and `apply` asks in these
    very words."""
    return "\n".join(f"  - {op.describe()}" for op in destructive(operations))


def _numbers(p: PipelinePlan) -> str:
    if p.rows_to_embed is None:
        return ""
    text = f"{p.rows_to_embed:,} row(s) to embed, ~{p.tokens or 0:,} tokens"
    if p.cost_usd is not None:
        text += f", ~${p.cost_usd:,.4f}"
    return text


def _op_line(op: Operation, sql: bool) -> Iterable[Text]:
    mark, style = ("-", "red") if op.destructive else ("+", "green")
    if not op.destructive and op_kind(op) == "DropIndex":
        mark, style = "-", "yellow"
    suffix = " (after commit)" if not op.transactional else ""
    yield Text.from_markup(f"    [{style}]{mark}[/] {safe(op.describe())}{suffix}")
    if sql:
        for statement in op.sql:
            yield Text(printable("        " + statement.replace("\n", "\n        ") + ";"),
                       style="cyan")


def _database(d: DatabasePlan, sql: bool) -> Iterable[Text]:
    yield Text.from_markup(f"[bold]database {safe(d.database)}[/]")
    for p in d.pipelines:
        style = ACTION_STYLE.get(p.action, "")
        numbers = _numbers(p)
        line = (f"  [{style}]{p.action:<9}[/] pipeline [bold]{safe(p.name)}[/] on "
                f"{safe(p.table)} → {safe(p.embedding_column)}")
        yield Text.from_markup(line + (f"  ({numbers})" if numbers else ""))
        for note in p.notes:
            yield Text.from_markup(f"    [magenta]![/] {safe(note)}")
        for phase in p.phases:
            yield Text(printable(f"      {phase}"), style="dim")
        for op in d.operations:
            if op.pipeline and p.name in op.pipeline.split(", "):
                yield from _op_line(op, sql)
    shared = [op for op in d.operations if op.pipeline is None]
    if shared:
        yield Text("  shared objects (schema v10r)")
        for op in shared:
            yield from _op_line(op, sql)


def render_text(plan: Plan, *, sql: bool = False, applied: bool = False) -> Group:
    lines: list[Text] = []
    for d in plan.databases:
        lines.extend(_database(d, sql))
    count = len(plan.operations)
    listing = destructive_listing(plan.operations)
    if listing and not applied:
        lines.append(Text("destructive operations (`v10r apply` asks before running them; "
                          "`--yes` to confirm in scripts):", style="bold red"))
        lines.append(Text(listing))
    if applied:
        summary = f"applied {count} operation(s)" if count else "nothing to do: up to date"
    else:
        summary = (f"{count} operation(s) pending; run `v10r apply`" if count
                   else "no changes: the databases match the specs")
    lines.append(Text(summary, style="bold"))
    return Group(*lines)


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "changes": plan.has_changes,
        "databases": [{
            "database": d.database,
            "pipelines": [{
                "name": p.name, "table": p.table, "action": p.action,
                "embedding_column": p.embedding_column, "renamed_from": p.renamed_from,
                "notes": list(p.notes), "rows_to_embed": p.rows_to_embed,
                "tokens": p.tokens, "cost_usd": p.cost_usd, "phases": list(p.phases),
            } for p in d.pipelines],
            "operations": [{
                "kind": op_kind(op), "pipeline": op.pipeline, "description": op.describe(),
                "destructive": op.destructive, "transactional": op.transactional,
                "sql": list(op.sql),
            } for op in d.operations],
        } for d in plan.databases],
    }


def render_json(plan: Plan) -> str:
    return json.dumps(plan_dict(plan), indent=2, ensure_ascii=False)


# ---- markdown, for pull-request comments --------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#+!|~$])")


def _md(text: object) -> str:
    """Text as inert markdown: no HTML, no links or emphasis, no table breaks, one line."""
    plain = printable(text).replace("\n", " ").replace("\r", " ")
    plain = plain.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", plain)


def _md_number(value: int | None, prefix: str = "") -> str:
    return "—" if value is None else f"{prefix}{value:,}"


def render_markdown(plan: Plan) -> str:
    """A table of pipelines (action, rows and tokens to embed, cost), the destructive
    operations called out, then every operation in a collapsed list."""
    lines = ["### v10r plan", "",
             "| database | pipeline | table → column | action | rows to embed | tokens | cost |",
             "|---|---|---|---|---:|---:|---:|"]
    notes: list[str] = []
    for d in plan.databases:
        for p in d.pipelines:
            cost = "—" if p.cost_usd is None else f"~${p.cost_usd:,.4f}"
            lines.append(f"| {_md(d.database)} | {_md(p.name)} | {_md(p.table)} → "
                         f"{_md(p.embedding_column)} | **{_md(p.action)}** | "
                         f"{_md_number(p.rows_to_embed)} | {_md_number(p.tokens, '~')} | "
                         f"{cost} |")
            notes += [f"- **{_md(p.name)}**: {_md(note)}" for note in p.notes]
    if notes:
        lines += ["", *notes]
    dangerous = list(destructive(plan.operations))
    if dangerous:
        caution = (f"> **{len(dangerous)} destructive operation(s)**: `v10r apply` asks "
                   "before running them (`--yes` in CI):")
        lines += ["", "> [!CAUTION]", caution]
        lines += [f"> - {_md(op.describe())}" for op in dangerous]
    count = len(plan.operations)
    if count:
        lines += ["", f"<details><summary>{count} operation(s)</summary>", ""]
        lines += [f"- {'**destructive:** ' if op.destructive else ''}{_md(op.describe())}"
                  for op in plan.operations]
        lines += ["", "</details>"]
    lines += ["", f"{count} operation(s) pending; `v10r apply` makes them." if count
              else "No changes: the databases match the specs."]
    return "\n".join(lines) + "\n"
