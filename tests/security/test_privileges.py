"""A missing GRANT is a clear error naming the role, the object and the GRANT to run:
never a traceback, never a worker that fails row by row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.conftest import Cli, Roles, write_spec
from v10r.compile.names import pipeline_names
from v10r.errors import PlanError
from v10r.reconcile import privileges
from v10r.spec.model import Pipeline

pytestmark = [pytest.mark.e2e]

SPEC = """\
name: docs
database: {dsn: "${DATABASE_URL}", read_dsn: "${DATABASE_READ_URL}"}
source: {table: public.docs, key: id, columns: [body]}
embedding: {provider: local}
target: {index: none}
queue: {kind: memory}
"""


async def _applied(roles: Roles, cli: Cli, tmp_path: Path) -> Path:
    spec = write_spec(tmp_path, SPEC)
    result = await cli("apply", spec, role="owner")
    assert result.code == 0, result.output
    return spec


def _assert_clear(result, role: str, grant: str) -> None:
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"role {role!r}" in result.output and grant in result.output, result.output


@pytest.mark.parametrize("revoke", [
    "REVOKE SELECT ON v10r.pipelines FROM {role}",
    "REVOKE USAGE ON SCHEMA v10r FROM {role}",
], ids=["no-select", "no-usage"])
@pytest.mark.parametrize("command", [("status",), ("plan",), ("listen", "--no-catchup")],
                         ids=["status", "plan", "listen"])
async def test_a_role_that_may_not_read_the_bookkeeping_gets_the_grant_to_run(
        roles: Roles, cli: Cli, tmp_path: Path, revoke: str, command: tuple[str, ...]) -> None:
    spec = await _applied(roles, cli, tmp_path)
    reader = roles.name("reader")
    await roles.admin(revoke.format(role=reader))
    result = await cli(*command, spec, role="reader")
    _assert_clear(result, reader, f"GRANT SELECT ON v10r.pipelines TO {reader}")


async def test_the_writer_and_reader_roles_of_the_docs_can_run_their_commands(
        roles: Roles, cli: Cli, tmp_path: Path) -> None:
    spec = await _applied(roles, cli, tmp_path)
    status = await cli("status", spec, role="reader")
    assert status.code in (0, 3), status.output


def _pipeline(dsn: str) -> Pipeline:
    return Pipeline.model_validate(
        {"name": "docs", "database": {"dsn": dsn},
         "source": {"table": "public.docs", "key": "id", "columns": ["body"]}})


async def test_a_select_only_write_role_is_refused_before_any_row(
        roles: Roles, cli: Cli, tmp_path: Path) -> None:
    await _applied(roles, cli, tmp_path)
    names = pipeline_names(_pipeline(roles.dsn("reader")))
    conn = await roles.connect("reader")
    try:
        with pytest.raises(PlanError) as err:
            await privileges.require_writer(conn, names, pipeline="docs")
        await privileges.require_reader(conn, names, pipeline="docs")  # reading is fine
    finally:
        await conn.close()
    text, reader = str(err.value), roles.name("reader")
    assert f"role {reader!r} lacks UPDATE (body_embedding, " in text
    assert "GRANT UPDATE (body_embedding, " in text and f"TO {reader}" in text
    assert "pipeline 'docs'" in text and "public.docs" in text


@pytest.mark.parametrize("grant", [
    "GRANT UPDATE ON public.docs TO {role}",
    ("GRANT UPDATE (body_embedding, body_embedding_model, body_embedding_hash, "
     "body_embedding_at, body_embedding_note) ON public.docs TO {role}"),
], ids=["table", "columns-only"])
async def test_a_writer_with_update_on_the_vector_columns_passes(
        roles: Roles, cli: Cli, tmp_path: Path, grant: str) -> None:
    await _applied(roles, cli, tmp_path)
    await roles.admin(f"REVOKE UPDATE ON public.docs FROM {roles.name('writer')}; "
                      + grant.format(role=roles.name("writer")))
    conn = await roles.connect("writer")
    try:
        names = pipeline_names(_pipeline(roles.dsn("writer")))
        await privileges.require_writer(conn, names, pipeline="docs")
        await privileges.require_reader(conn, names, pipeline="docs")
    finally:
        await conn.close()


async def test_a_role_without_select_on_the_text_is_refused(roles: Roles, cli: Cli,
                                                            tmp_path: Path) -> None:
    await _applied(roles, cli, tmp_path)
    writer = roles.name("writer")
    await roles.admin(f"REVOKE SELECT ON public.docs FROM {writer}; "
                      f"GRANT SELECT (id) ON public.docs TO {writer}")
    conn = await roles.connect("writer")
    try:
        names = pipeline_names(_pipeline(""))
        with pytest.raises(PlanError, match=r"lacks SELECT \(body\) on public.docs"):
            await privileges.require_writer(conn, names, pipeline="docs")
        with pytest.raises(PlanError, match=r"lacks SELECT \(body, body_embedding_hash, "
                           r"body_embedding_model\)"):
            await privileges.require_reader(conn, names, pipeline="docs")
    finally:
        await conn.close()


async def test_a_worker_whose_write_role_may_only_select_stops_at_start_with_the_grant(
        roles: Roles, cli: Cli, tmp_path: Path) -> None:
    """Through the real CLI: the in-process workers refuse to start, naming the GRANT,
    instead of failing (and dead-lettering) every row."""
    spec = await _applied(roles, cli, tmp_path)
    await roles.admin("INSERT INTO public.docs (id, title, body) VALUES (1, 't', 'b')")
    result = await cli("listen", spec, "--workers-in-process", "1", "--no-catchup",
                       role="reader")
    reader = roles.name("reader")
    _assert_clear(result, reader, "GRANT UPDATE (body_embedding")
