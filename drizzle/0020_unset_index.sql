-- Cleanup's second source (src/db/cleanup-statement.ts, source 'unset': sessions given no cleanup deadline
-- yet, old enough to be idle or past their re-authentication period) read drizzle/0015's
-- sessions_unarmed_idx, on created_at alone. A session with no deadline that expired absolutely is the first
-- source's to delete (sessions_cleanup_idx: its absolute expiry stands for the deadline); its entry in the
-- unarmed index stays until VACUUM, and the second source's first statement of the same run visited the heap
-- tuple behind each such entry before finding a live one: after 200,000 never-armed expired sessions were
-- deleted, that statement took 149-215 ms and changed nothing (deleteExpired({ pause: 0 }) in a scratch run,
-- with the bench running beside it; test/db/cleanup-blocks.test.ts counts the heap blocks). This index
-- holds the absolute expiry as its second key, so the second source asks for `expires_at > now` as an index
-- condition and passes those entries in the index, without reading the heap. Same rows, same order.
--
-- Built with CREATE INDEX IF NOT EXISTS inside migrate()'s transaction: on a large table, build it beforehand
-- with CREATE INDEX CONCURRENTLY under the same name (README, "Schema and migrations"); the old index is
-- dropped here (a brief lock; DROP INDEX CONCURRENTLY beforehand avoids even that).
CREATE INDEX IF NOT EXISTS "sessions_unset_idx" ON "sessions" USING btree ("created_at", "expires_at") WHERE "cleanup_at" IS NULL;
--> statement-breakpoint
DROP INDEX IF EXISTS "sessions_unarmed_idx";
