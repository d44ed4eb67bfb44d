-- pipeline docs: fingerprint 4263cf9acbbeca35, definition de0b5f537706cde7
-- column body_embedding vector(384)
-- column body_embedding_model text
-- column body_embedding_hash text
-- column body_embedding_at timestamp with time zone
-- column body_embedding_note text
CREATE INDEX CONCURRENTLY IF NOT EXISTS "documents_body_embedding_hnsw" ON "public"."documents" USING hnsw ("body_embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE TRIGGER "documents_notify_v10r" AFTER INSERT ON "public"."documents" REFERENCING NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_documents', 'public.documents', 'pg_catalog.to_jsonb(n."id")', 'v10r_new n', '(true)', '1000', 'v10r:d4994f40fa3dcf50');
CREATE TRIGGER "documents_bulk_notify_v10r" AFTER UPDATE ON "public"."documents" REFERENCING OLD TABLE AS v10r_old NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_documents', 'public.documents', 'pg_catalog.to_jsonb(n."id")', 'v10r_new n LEFT JOIN v10r_old o ON n."id"::pg_catalog.text OPERATOR(pg_catalog.=) o."id"::pg_catalog.text', '(o."id" IS NULL AND ((true))) OR ((true) AND (coalesce(o."body"::pg_catalog.text OPERATOR(pg_catalog.<>) n."body"::pg_catalog.text, (o."body" IS NULL) OPERATOR(pg_catalog.<>) (n."body" IS NULL))))', '1000', 'v10r:6f8927c781c1d6a4');
