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
CREATE OR REPLACE FUNCTION "v10r"."v10r_notify"() RETURNS trigger LANGUAGE plpgsql AS $v10r$
-- v10r notify function, version 1. Arguments: see v10r/compile/ddl.py.
DECLARE
  key jsonb;
  keys jsonb[];
  found_rows bigint;
  threshold bigint;
BEGIN
  IF TG_LEVEL = 'ROW' THEN
    -- TG_ARGV: channel, table label, key SQL, insert condition, update condition
    EXECUTE format('SELECT %s WHERE %s', TG_ARGV[2],
                   CASE TG_OP WHEN 'INSERT' THEN TG_ARGV[3] ELSE TG_ARGV[4] END)
      INTO key USING CASE TG_OP WHEN 'INSERT' THEN NEW ELSE OLD END, NEW;
    GET DIAGNOSTICS found_rows = ROW_COUNT;
    IF found_rows > 0 AND key IS NOT NULL THEN
      PERFORM pg_notify(TG_ARGV[0], jsonb_build_object('id', key, 'table', TG_ARGV[1])::text);
    END IF;
    RETURN NULL;
  END IF;
  -- TG_ARGV: channel, table label, key SQL, FROM clause, condition, threshold ('' = none)
  threshold := nullif(TG_ARGV[5], '')::bigint;
  EXECUTE format('SELECT array_agg(k) FROM (SELECT %s AS k FROM %s WHERE %s LIMIT %s) s',
                 TG_ARGV[2], TG_ARGV[3], TG_ARGV[4], coalesce((threshold + 1)::text, 'ALL'))
    INTO keys;
  IF keys IS NULL THEN
    RETURN NULL;
  END IF;
  IF threshold IS NOT NULL AND cardinality(keys) > threshold THEN
    PERFORM pg_notify(TG_ARGV[0], jsonb_build_object('scan', true, 'table', TG_ARGV[1])::text);
  ELSE
    PERFORM pg_notify(TG_ARGV[0], jsonb_build_object('id', k, 'table', TG_ARGV[1])::text)
      FROM unnest(keys) AS k WHERE k IS NOT NULL;
  END IF;
  RETURN NULL;
END
$v10r$;
