DROP INDEX "sessions_expires_idx";--> statement-breakpoint
DROP INDEX "sessions_last_accessed_idx";--> statement-breakpoint
DROP INDEX "sessions_user_idx";--> statement-breakpoint
CREATE INDEX "sessions_user_idx" ON "sessions" USING btree ("user_id");