-- The version a change left its session at, kept in the change record, so a cache that already holds that
-- version keeps its entry when the feed brings the change back (a process's own update, or a miss that read
-- the row after the change committed): src/core/cache.ts, FeedResponse.versions in src/protocol.ts.
--
-- Recorded only when the update raised the version of a session that kept its id: every write of the
-- library does (version + 1). Anything else is recorded with version null, which every reader treats as
-- "invalidate": deletes (their records never carry one), an update that left the version as it was or
-- moved it back (plain SQL typed into psql), an id changed in place, and every record written before this
-- migration. So a cached row holding at least a change's version and read before the change can only exist
-- across an unversioned change in between, which committed first and is delivered no later.
--
-- Nullable, no default: no table rewrite. A release that predates the column ignores it; cursors are
-- unchanged. Same statement count per captured update as drizzle/0009 (one INSERT, one lock try).
ALTER TABLE "session_changes" ADD COLUMN "version" integer;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "session_changes_capture_update"() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	IF NEW.id = OLD.id THEN
		INSERT INTO "session_changes" (session_id, version) VALUES (OLD.id, CASE WHEN NEW.version > OLD.version THEN NEW.version END);
	ELSE
		INSERT INTO "session_changes" (session_id) VALUES (OLD.id), (NEW.id);
	END IF;
	IF pg_try_advisory_xact_lock(TG_RELID::integer, -1) THEN
		PERFORM pg_notify(left(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 63), '');
	END IF;
	RETURN NULL;
END
$$;
