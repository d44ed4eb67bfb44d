-- pipeline tickets: fingerprint 853ac578eca11c5c, definition 42dc4b3a2c70d57f
-- column subject_embedding halfvec(1024)
-- column subject_embedding_model text
-- column subject_embedding_hash text
-- column subject_embedding_at timestamp with time zone
-- column subject_embedding_note text
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tickets_subject_embedding_hnsw" ON "support"."tickets" USING hnsw ("subject_embedding" halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE TRIGGER "tickets_notify_v10r" AFTER INSERT ON "support"."tickets" REFERENCING NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_tickets', 'support.tickets', 'jsonb_build_object(''tenant_id'', n."tenant_id", ''ticket_id'', n."ticket_id")', 'v10r_new n', '((n."deleted_at" IS NULL) AND (n."channel"::text IN (''email'', ''chat'', ''phone'')))', '500', 'v10r:e11b927f75776512');
CREATE TRIGGER "tickets_bulk_notify_v10r" AFTER UPDATE ON "support"."tickets" REFERENCING OLD TABLE AS v10r_old NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_tickets', 'support.tickets', 'jsonb_build_object(''tenant_id'', n."tenant_id", ''ticket_id'', n."ticket_id")', 'v10r_new n LEFT JOIN v10r_old o ON n."tenant_id" = o."tenant_id" AND n."ticket_id" = o."ticket_id"', '(o."tenant_id" IS NULL AND (((n."deleted_at" IS NULL) AND (n."channel"::text IN (''email'', ''chat'', ''phone''))))) OR (((n."deleted_at" IS NULL) AND (n."channel"::text IN (''email'', ''chat'', ''phone''))) AND (o."subject" IS DISTINCT FROM n."subject" OR o."body" IS DISTINCT FROM n."body" OR o."resolution" IS DISTINCT FROM n."resolution" OR NOT coalesce((o."deleted_at" IS NULL) AND (o."channel"::text IN (''email'', ''chat'', ''phone'')), false)))', '500', 'v10r:02be0c11bc2d4ccb');
