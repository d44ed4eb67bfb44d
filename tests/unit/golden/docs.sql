-- pipeline docs: fingerprint 4263cf9acbbeca35, definition 3f41e5888c2fa84c
-- column body_embedding vector(384)
-- column body_embedding_model text
-- column body_embedding_hash text
-- column body_embedding_at timestamp with time zone
-- column body_embedding_note text
CREATE INDEX CONCURRENTLY IF NOT EXISTS "documents_body_embedding_hnsw" ON "public"."documents" USING hnsw ("body_embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE TRIGGER "documents_notify_v10r" AFTER INSERT ON "public"."documents" REFERENCING NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_documents', 'public.documents', 'to_jsonb(n."id")', 'v10r_new n', '(true)', '1000', 'v10r:020bb9879b2c4d21');
CREATE TRIGGER "documents_bulk_notify_v10r" AFTER UPDATE ON "public"."documents" REFERENCING OLD TABLE AS v10r_old NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_documents', 'public.documents', 'to_jsonb(n."id")', 'v10r_new n LEFT JOIN v10r_old o ON n."id" = o."id"', '(o."id" IS NULL AND ((true))) OR ((true) AND (o."body" IS DISTINCT FROM n."body"))', '1000', 'v10r:438180389378b3db');
