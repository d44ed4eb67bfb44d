CREATE SCHEMA IF NOT EXISTS "v10r";
CREATE TABLE IF NOT EXISTS "v10r"."pipelines" (
    name text PRIMARY KEY,
    database_name text NOT NULL,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    embedding_column text NOT NULL,
    columns text[] NOT NULL,
    index_name text,
    triggers text[] NOT NULL,
    definition_hash text NOT NULL,
    fingerprint text NOT NULL,
    dimensions integer NOT NULL,
    model text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    spec_source text,
    next_column text,
    next_fingerprint text,
    retired text[] NOT NULL DEFAULT '{}'
);
CREATE OR REPLACE FUNCTION "v10r"."v10r_notify"() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $v10r$
-- v10r notify function, version 3. Arguments: see v10r/compile/ddl.py.
-- Runs inside users' writes: every call and operator is schema-qualified, and the
-- function pins search_path, so nothing a user creates in a schema is ever called.
DECLARE
  key jsonb;
  keys jsonb[];
  found_rows bigint;
  threshold bigint;
  payload text;
  is_insert boolean := TG_OP OPERATOR(pg_catalog.=) 'INSERT';
BEGIN
  IF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
    -- TG_ARGV: channel, table label, key SQL, insert condition, update condition
    EXECUTE pg_catalog.format('SELECT %s WHERE %s', TG_ARGV[2],
                              CASE WHEN is_insert THEN TG_ARGV[3] ELSE TG_ARGV[4] END)
      INTO key USING CASE WHEN is_insert THEN NEW ELSE OLD END, NEW;
    GET DIAGNOSTICS found_rows := ROW_COUNT;
    IF found_rows OPERATOR(pg_catalog.>) 0 AND key IS NOT NULL THEN
      payload := pg_catalog.jsonb_build_object('id', key, 'table', TG_ARGV[1])::pg_catalog.text;
      -- NOTIFY refuses 8000 bytes or more, which would fail the user's write: a key too
      -- long to carry asks for a scan instead (the catch-up scan finds the row).
      IF pg_catalog.octet_length(payload) OPERATOR(pg_catalog.>=) 8000 THEN
        payload := pg_catalog.jsonb_build_object('scan', true, 'table', TG_ARGV[1])::pg_catalog.text;
      END IF;
      PERFORM pg_catalog.pg_notify(TG_ARGV[0], payload);
    END IF;
    RETURN NULL;
  END IF;
  -- TG_ARGV: channel, table label, key SQL, FROM clause, condition, threshold ('' = none)
  IF TG_ARGV[5] OPERATOR(pg_catalog.<>) '' THEN
    threshold := TG_ARGV[5]::pg_catalog.int8;
  END IF;
  EXECUTE pg_catalog.format(
      'SELECT pg_catalog.array_agg(k) FROM (SELECT %s AS k FROM %s WHERE %s LIMIT %s) s',
      TG_ARGV[2], TG_ARGV[3], TG_ARGV[4],
      coalesce((threshold OPERATOR(pg_catalog.+) 1)::pg_catalog.text, 'ALL'))
    INTO keys;
  IF keys IS NULL THEN
    RETURN NULL;
  END IF;
  IF threshold IS NOT NULL AND pg_catalog.cardinality(keys) OPERATOR(pg_catalog.>) threshold THEN
    PERFORM pg_catalog.pg_notify(TG_ARGV[0], pg_catalog.jsonb_build_object(
      'scan', true, 'table', TG_ARGV[1])::pg_catalog.text);
  ELSE
    PERFORM pg_catalog.pg_notify(TG_ARGV[0], CASE
        WHEN pg_catalog.octet_length(p) OPERATOR(pg_catalog.<) 8000 THEN p
        ELSE pg_catalog.jsonb_build_object('scan', true, 'table', TG_ARGV[1])::pg_catalog.text
      END)
      FROM (SELECT pg_catalog.jsonb_build_object('id', k, 'table', TG_ARGV[1])::pg_catalog.text
              AS p FROM pg_catalog.unnest(keys) AS k WHERE k IS NOT NULL) AS s;
  END IF;
  RETURN NULL;
END
$v10r$;
