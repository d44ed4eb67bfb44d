"""The notify trigger, on real PostgreSQL: one notification per changed row, none for
v10r's own writes, one `scan` for bulk statements, tiny payloads whatever the row holds."""

from __future__ import annotations

import pytest

from tests.integration.reconcile.conftest import Notifications, make_pipeline
from v10r.reconcile import apply_pipelines

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE docs (id bigint PRIMARY KEY, body text, status text, other text)"
MODES = {"per-row": None, "bulk": 1000}


@pytest.fixture(params=list(MODES))
async def docs(request, pg_dsn, conn, listener_conn) -> Notifications:
    """public.docs applied with a filter (status != 'draft'), in either trigger mode."""
    await conn.execute(TABLE)
    pipeline = make_pipeline(
        pg_dsn, source={"table": "docs", "key": "id", "columns": ["body"],
                        "filter": [{"column": "status", "op": "!=", "value": "draft"}]},
        trigger={"bulk_threshold": MODES[request.param]})
    await apply_pipelines([pipeline])
    return await Notifications(listener_conn, "v10r_docs").start()


async def test_insert_sends_one_notification_with_key_and_table(docs, conn) -> None:
    await conn.execute("INSERT INTO docs VALUES (1, 'hello', 'live', 'x')")
    assert await docs.drain(conn) == [{"id": 1, "table": "public.docs"}]


async def test_update_of_the_text_sends_one(docs, conn) -> None:
    await conn.execute("INSERT INTO docs VALUES (1, 'hello', 'live', 'x')")
    await docs.drain(conn)
    await conn.execute("UPDATE docs SET body = 'changed' WHERE id = 1")
    assert await docs.drain(conn) == [{"id": 1, "table": "public.docs"}]


async def test_writes_to_vector_metadata_or_other_columns_send_none(docs, conn) -> None:
    await conn.execute("INSERT INTO docs VALUES (1, 'hello', 'live', 'x')")
    await docs.drain(conn)
    await conn.execute(
        "UPDATE docs SET body_embedding = array_fill(0.5, ARRAY[384])::vector, "
        "body_embedding_hash = 'h', body_embedding_model = 'm', body_embedding_at = now()")
    await conn.execute("UPDATE docs SET other = 'y'")
    await conn.execute("UPDATE docs SET body = body")
    assert await docs.drain(conn) == []


async def test_filtered_out_rows_send_none_until_they_enter_the_filter(docs, conn) -> None:
    await conn.execute("INSERT INTO docs VALUES (1, 'hello', 'draft', 'x')")
    await conn.execute("UPDATE docs SET body = 'still a draft'")
    assert await docs.drain(conn) == []
    await conn.execute("UPDATE docs SET status = 'live'")
    assert await docs.drain(conn) == [{"id": 1, "table": "public.docs"}]


async def test_one_statement_over_many_rows_notifies_each_row_once(docs, conn) -> None:
    await conn.execute("INSERT INTO docs SELECT g, 'text ' || g, 'live', '' "
                       "FROM generate_series(1, 50) g")
    got = await docs.drain(conn)
    assert sorted(n["id"] for n in got) == list(range(1, 51))


async def test_a_megabyte_of_text_inserts_fine_with_a_tiny_payload(pg_dsn, conn,
                                                                   listener_conn) -> None:
    await conn.execute(TABLE)
    await apply_pipelines([make_pipeline(pg_dsn, trigger={"bulk_threshold": None})])
    notes = await Notifications(listener_conn, "v10r_docs").start()
    await conn.execute("INSERT INTO docs (id, body) VALUES (7, repeat('x', 1048576))")
    got = await notes.drain(conn)
    assert got == [{"id": 7, "table": "public.docs"}]


async def test_statement_over_the_bulk_threshold_sends_one_scan(pg_dsn, conn,
                                                                listener_conn) -> None:
    await conn.execute(TABLE)
    await apply_pipelines([make_pipeline(pg_dsn, trigger={"bulk_threshold": 10})])
    notes = await Notifications(listener_conn, "v10r_docs").start()
    await conn.execute("INSERT INTO docs (id, body) SELECT g, 't' FROM generate_series(1, 11) g")
    assert await notes.drain(conn) == [{"scan": True, "table": "public.docs"}]
    await conn.execute("UPDATE docs SET body = 'u' WHERE id <= 10")
    assert len(await notes.drain(conn)) == 10
    await conn.copy_records_to_table("docs", records=[(i, "c", None, None) for i in
                                                      range(100, 5100)],
                                     columns=["id", "body", "status", "other"])
    assert await notes.drain(conn) == [{"scan": True, "table": "public.docs"}]


@pytest.mark.parametrize("threshold", [None, 100])
async def test_composite_key_payload_is_an_object(pg_dsn, conn, listener_conn,
                                                  threshold) -> None:
    await conn.execute('CREATE SCHEMA support; CREATE TABLE support.tickets (tenant text, '
                       'n int, subject text, PRIMARY KEY (tenant, n))')
    pipeline = make_pipeline(pg_dsn, name="tickets", source={
        "table": "support.tickets", "key": ["tenant", "n"], "columns": ["subject"]},
        trigger={"bulk_threshold": threshold})
    await apply_pipelines([pipeline])
    notes = await Notifications(listener_conn, "v10r_tickets").start()
    await conn.execute("INSERT INTO support.tickets VALUES ('acme', 3, 'help')")
    assert await notes.drain(conn) == [
        {"id": {"tenant": "acme", "n": 3}, "table": "support.tickets"}]


async def test_odd_identifiers_work_end_to_end(pg_dsn, conn, listener_conn) -> None:
    await conn.execute('CREATE SCHEMA "Ünï Schema"; CREATE TABLE "Ünï Schema"."My Docs" '
                       '("Doc ID" int PRIMARY KEY, "Body ""text""" text)')
    pipeline = make_pipeline(pg_dsn, name="odd", source={
        "table": '"Ünï Schema"."My Docs"', "key": "Doc ID", "columns": ['Body "text"']})
    await apply_pipelines([pipeline])
    notes = await Notifications(listener_conn, "v10r_My Docs").start()
    await conn.execute('INSERT INTO "Ünï Schema"."My Docs" VALUES (1, \'hi\')')
    assert await notes.drain(conn) == [{"id": 1, "table": "Ünï Schema.My Docs"}]
    cols = await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid = "
                            "'\"Ünï Schema\".\"My Docs\"'::regclass AND attnum > 0")
    assert 'Body "text"_embedding' in {r["attname"] for r in cols}
