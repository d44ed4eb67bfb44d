-- pipeline products: fingerprint 6fa74dc51e6d7cee, definition 8499c6f07fce4e18
-- column search_embedding vector(1536)
-- column search_embedding_model text
-- column search_embedding_hash text
-- column search_embedding_at timestamp with time zone
-- column search_embedding_note text
CREATE INDEX CONCURRENTLY IF NOT EXISTS "products_search_embedding_hnsw" ON "shop"."products" USING hnsw ("search_embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE TRIGGER "products_notify_v10r" AFTER INSERT ON "shop"."products" REFERENCING NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_products', 'shop.products', 'to_jsonb(n."sku")', 'v10r_new n', '((n."status"::text = ''active''))', '1000', 'v10r:4820d415fb69ae1f');
CREATE TRIGGER "products_bulk_notify_v10r" AFTER UPDATE ON "shop"."products" REFERENCING OLD TABLE AS v10r_old NEW TABLE AS v10r_new FOR EACH STATEMENT EXECUTE FUNCTION "v10r"."v10r_notify"('v10r_products', 'shop.products', 'to_jsonb(n."sku")', 'v10r_new n LEFT JOIN v10r_old o ON n."sku" = o."sku"', '(o."sku" IS NULL AND (((n."status"::text = ''active'')))) OR (((n."status"::text = ''active'')) AND (o."title" IS DISTINCT FROM n."title" OR o."description" IS DISTINCT FROM n."description" OR NOT coalesce((o."status"::text = ''active''), false)))', '1000', 'v10r:e91d5468ea3cd7d1');
