-- Change records per statement, not per deleted row. A statement that deletes sessions now appends one
-- row to session_changes whatever it deleted: the id in session_id when it deleted one session (the row
-- every release reads), all of them in session_ids when it deleted 2 to 10000, the "everything" row (both
-- null) beyond that, as before. A cleanup statement deleting 5000 expired sessions writes one change row
-- and one index entry instead of 5000 of each. src/feed.ts expands session_ids; a release that predates
-- the column reads such a row as "everything" (its session_id is null) and clears its cache: it drops
-- more than it needs to, never less. Cursors (snapshots) are unchanged, so every cursor stays valid.
--
-- Updates stay captured row by row (drizzle/0005's column-specific trigger): a trigger with transition
-- tables cannot name columns (UPDATE OF), so a statement-level update trigger would fire on every touch
-- flush and copy every touched row into its transition tables, which costs the flush more than the
-- per-row trigger saves anywhere else.
ALTER TABLE "session_changes" ADD COLUMN "session_ids" uuid[];
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "session_changes_capture_delete"() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO "session_changes" (session_id, session_ids)
	SELECT CASE WHEN cardinality(d.ids) = 1 THEN d.ids[1] END, CASE WHEN cardinality(d.ids) BETWEEN 2 AND 10000 THEN d.ids END
	FROM (SELECT array_agg(x.id) AS ids FROM (SELECT r.id FROM deleted_rows AS r LIMIT 10001) AS x) AS d
	WHERE d.ids IS NOT NULL;
	IF FOUND AND pg_try_advisory_xact_lock(TG_RELID::integer, -1) THEN
		PERFORM pg_notify(left(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 63), '');
	END IF;
	RETURN NULL;
END
$$;
