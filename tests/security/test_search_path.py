"""No object another role creates in the search path ever runs inside v10r's SQL.

A role with CREATE on `public` (everyone's default before PostgreSQL 15) defines
better-matching overloads of functions and operators v10r's generated SQL uses. Each
one logs who called it and tries `ALTER ROLE <hostile> SUPERUSER`, which succeeds when
a superuser calls it. Every path that runs generated SQL is exercised through the real
CLI and real writes: row and statement triggers (as a superuser and as a plain
writer), the catch-up scan (`backfill`), `status` counts and `plan` statistics.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.fixtures.queues import redis_url  # noqa: F401  (fixture)
from tests.security.conftest import Cli, Roles, write_spec
from v10r.queues.redis import RedisQueue

pytestmark = [pytest.mark.e2e]

SPEC = """\
name: {name}
database: {{dsn: "${{DATABASE_URL}}", read_dsn: "${{DATABASE_READ_URL}}"}}
source:
  table: public.docs
  key: id
  columns: [title, body]
  filter: [{{column: title, op: "!=", value: skip}}]
embedding: {{provider: local}}
target: {{index: none}}
trigger: {{bulk_threshold: {threshold}}}
queue: {{kind: redis, url: "{redis}"}}
"""

# Overloads that match v10r's calls better than pg_catalog's polymorphic or variadic
# versions do, and an `=` for varchar that `IS DISTINCT FROM` would pick.
HOSTILE = """
CREATE TABLE public.hijack_log (who text, what text);
GRANT INSERT ON public.hijack_log TO PUBLIC;
CREATE FUNCTION public.v10r_hijacked(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.hijack_log VALUES (current_user, what);
  BEGIN
    EXECUTE 'ALTER ROLE {hostile} SUPERUSER';
  EXCEPTION WHEN insufficient_privilege THEN NULL;
  END;
END $$;
CREATE FUNCTION public.to_jsonb(v bigint) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('to_jsonb(bigint)');
      RETURN pg_catalog.to_jsonb(v::pg_catalog.numeric); END $$;
CREATE FUNCTION public.jsonb_build_object(text, jsonb, text, text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('jsonb_build_object');
      RETURN pg_catalog.jsonb_build_object($1, $2, $3, $4); END $$;
CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('format'); RETURN pg_catalog.format($1, $2, $3); END $$;
CREATE FUNCTION public.convert_to(text, text) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('convert_to');
      RETURN pg_catalog.convert_to($1, $2::pg_catalog.name); END $$;
CREATE FUNCTION public.cardinality(jsonb[]) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('cardinality');
      RETURN pg_catalog.cardinality($1); END $$;
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('unnest(text[])');
      RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION public.unnest(int2vector) RETURNS SETOF smallint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('unnest(int2vector)');
      RETURN QUERY SELECT pg_catalog.unnest($1::pg_catalog.int2[]); END $$;
CREATE FUNCTION public.v10r_eq(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.v10r_hijacked('=(varchar, varchar)');
      RETURN $1::pg_catalog.text OPERATOR(pg_catalog.=) $2::pg_catalog.text; END $$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.v10r_eq);
"""


async def _plant(roles: Roles) -> None:
    conn = await roles.connect("hostile")
    try:
        await conn.execute(HOSTILE.format(hostile=roles.name("hostile")))
    finally:
        await conn.close()
    await roles.admin(f"GRANT INSERT ON public.docs TO {roles.name('writer')}")


async def _assert_never_ran(roles: Roles) -> None:
    conn = await roles.connect("admin")
    try:
        log = await conn.fetch("SELECT who, what FROM public.hijack_log")
        superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1",
                                        roles.name("hostile"))
    finally:
        await conn.close()
    assert sorted({tuple(r) for r in log}) == []
    assert superuser is False


async def _write(roles: Roles, kind: str, first_id: int) -> None:
    """Inserts and updates (text change, filter entry, many rows) as one role."""
    conn = await roles.connect(kind)
    try:
        ids = list(range(first_id, first_id + 5))
        await conn.executemany("INSERT INTO public.docs (id, title, body) VALUES ($1, $2, $3)",
                               [(i, f"title {i}", f"body {i}") for i in ids])
        await conn.execute("UPDATE public.docs SET title = title || ' changed' "
                           "WHERE id = ANY($1::bigint[])", ids)
        await conn.execute("UPDATE public.docs SET body = 'one' WHERE id = $1", ids[0])
        await conn.execute("INSERT INTO public.docs (id, title) VALUES ($1, 'skip')",
                           first_id + 100)
        await conn.execute("UPDATE public.docs SET title = 'in now' WHERE id = $1",
                           first_id + 100)
    finally:
        await conn.close()


@pytest.mark.parametrize("threshold", ["null", "2"], ids=["row-trigger", "statement-trigger"])
async def test_hostile_overloads_never_run_in_triggers_scans_or_counts(
        roles: Roles, cli: Cli, tmp_path: Path, redis_url: str, threshold: str) -> None:  # noqa: F811
    await _plant(roles)
    name = f"sp_{roles.suffix}_{'row' if threshold == 'null' else 'stmt'}"
    spec = write_spec(tmp_path, SPEC.format(name=name, threshold=threshold, redis=redis_url))
    applied = await cli("apply", spec, role="owner")
    assert applied.code == 0, applied.output
    await _write(roles, "admin", 1)
    await _write(roles, "writer", 1000)
    status = await cli("status", spec, role="reader")
    assert status.code in (0, 3), status.output  # 3: rows still to embed
    try:
        backfill = await cli("backfill", spec, role="writer", read_role="reader")
        assert backfill.code == 0, backfill.output
        assert "row(s) enqueued" in backfill.out
    finally:
        cleaner = RedisQueue(redis_url, pipelines=[name])
        await cleaner.start()
        try:
            await cleaner.drop(name)
        finally:
            await cleaner.close()
    plan = await cli("plan", spec, role="owner")
    assert plan.code == 0, plan.output
    await _assert_never_ran(roles)


async def test_every_function_v10r_creates_pins_its_search_path(roles: Roles, cli: Cli,
                                                                tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC.format(name=f"fn_{roles.suffix}", threshold="null",
                                            redis="redis://127.0.0.1:1/0"))
    applied = await cli("apply", spec, role="owner")
    assert applied.code == 0, applied.output
    conn = await roles.connect("admin")
    try:
        rows = await conn.fetch(
            "SELECT p.proname, p.proconfig FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'v10r'")
    finally:
        await conn.close()
    assert rows, "v10r created no function"
    for row in rows:
        assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"], row["proname"]


async def test_a_superuser_write_after_a_hostile_role_planted_overloads_stays_clean(
        roles: Roles, cli: Cli, tmp_path: Path) -> None:
    """The issue's exact scenario: overloads planted after apply, then a superuser's
    INSERT on the table."""
    spec = write_spec(tmp_path, SPEC.format(name=f"su_{roles.suffix}", threshold="null",
                                            redis="redis://127.0.0.1:1/0"))
    assert (await cli("apply", spec, role="owner")).code == 0
    await _plant(roles)
    conn = await roles.connect("admin")
    try:
        await conn.execute("INSERT INTO public.docs (id, title, body) VALUES (1, 'a', 'b')")
        with pytest.raises(asyncpg.UniqueViolationError):  # the write itself is untouched
            await conn.execute("INSERT INTO public.docs (id) VALUES (1)")
    finally:
        await conn.close()
    await _assert_never_ran(roles)


async def test_apply_upgrades_an_unpinned_function_of_an_older_install(
        roles: Roles, cli: Cli, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SPEC.format(name=f"up_{roles.suffix}", threshold="null",
                                            redis="redis://127.0.0.1:1/0"))
    assert (await cli("apply", spec, role="owner")).code == 0
    owner = await roles.connect("owner")
    try:  # what an older version left behind: another body, no pinned search_path
        await owner.execute("CREATE OR REPLACE FUNCTION v10r.v10r_notify() RETURNS trigger "
                            "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
        plan = await cli("plan", spec, role="owner")
        assert plan.code == 3 and "update function v10r.v10r_notify()" in plan.out, plan.output
        assert (await cli("apply", spec, role="owner")).code == 0
        config = await owner.fetchval(
            "SELECT proconfig FROM pg_proc WHERE oid = 'v10r.v10r_notify()'::regprocedure")
    finally:
        await owner.close()
    assert config == ["search_path=pg_catalog, pg_temp"]
    assert (await cli("plan", spec, role="owner")).code == 0
