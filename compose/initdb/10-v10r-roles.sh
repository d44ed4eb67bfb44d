#!/bin/bash
# Creates v10r's three database roles and a sample table, on the first start of the
# postgres container (docker-entrypoint-initdb.d). Passwords come from the container's
# environment (compose/.env); none is written here.
#
#   v10r_owner   owns the application tables; `v10r apply` runs as it (ALTER TABLE,
#                CREATE INDEX, CREATE TRIGGER and the `v10r` schema need ownership)
#   v10r_writer  the listener (LISTEN) and the workers: SELECT + UPDATE on the application
#                tables in schema public; SELECT only on v10r's bookkeeping (it never
#                writes there: only the owner's apply does)
#   v10r_reader  row fetches, catch-up scans and `v10r status`: SELECT only
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_password="$V10R_OWNER_PASSWORD" \
  -v writer_password="$V10R_WRITER_PASSWORD" \
  -v reader_password="$V10R_READER_PASSWORD" \
  -v dbname="$POSTGRES_DB" <<'SQL'
CREATE EXTENSION IF NOT EXISTS vector;

CREATE ROLE v10r_owner  LOGIN PASSWORD :'owner_password';
CREATE ROLE v10r_writer LOGIN PASSWORD :'writer_password';
CREATE ROLE v10r_reader LOGIN PASSWORD :'reader_password';

GRANT CONNECT ON DATABASE :"dbname" TO v10r_owner, v10r_writer, v10r_reader;
GRANT CREATE ON DATABASE :"dbname" TO v10r_owner;  -- for the `v10r` schema
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO v10r_writer, v10r_reader;
GRANT CREATE ON SCHEMA public TO v10r_owner;

-- Whatever v10r_owner creates later (the `v10r` schema and its bookkeeping table,
-- new application tables) is readable by the reader and the writer; only application
-- tables in schema public are writable by the writer, never the bookkeeping in `v10r`.
ALTER DEFAULT PRIVILEGES FOR ROLE v10r_owner GRANT USAGE ON SCHEMAS TO v10r_writer, v10r_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE v10r_owner GRANT SELECT ON TABLES TO v10r_writer, v10r_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE v10r_owner IN SCHEMA public GRANT UPDATE ON TABLES TO v10r_writer;

-- The sample table the compose pipelines embed (compose/pipelines/*/articles.yaml).
SET ROLE v10r_owner;
CREATE TABLE public.articles (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title      text NOT NULL,
    body       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
RESET ROLE;
SQL
