-- Change capture. Every change or deletion of a session (by the library, the worker's cleanup,
-- max-sessions eviction, or plain SQL typed into psql) appends its id to session_changes in the same
-- transaction, stamped with the transaction id. Consumers read that record against snapshots, so a
-- change whose transaction took its id early but committed late is still delivered. Touches (updates of
-- last_accessed only) are not changes: the WHEN clause filters them without calling the function.
--
-- Wake-ups: NOTIFY inside a transaction makes its commit take a database-wide lock, which serializes
-- every notifying commit (go-pg-session's throughput collapse). So at most one transaction at a time
-- sends a wake-up (a non-blocking advisory lock decides, once per transaction); the others don't notify
-- and don't wait. A notification is only a wake-up: the worker also reads the record on a short timer
-- and once more shortly after every wake-up, so a change whose wake-up was skipped is still found.
CREATE OR REPLACE FUNCTION "session_changes_wake"(p_relid oid, p_channel text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	IF current_setting('pg_edge_session.woken', true) IS DISTINCT FROM p_channel THEN
		PERFORM set_config('pg_edge_session.woken', p_channel, true);
		IF pg_try_advisory_xact_lock(p_relid::integer, -1) THEN
			PERFORM pg_notify(p_channel, '');
		END IF;
	END IF;
END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "session_changes_capture_update"() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO "session_changes" (session_id) VALUES (OLD.id);
	IF NEW.id IS DISTINCT FROM OLD.id THEN
		INSERT INTO "session_changes" (session_id) VALUES (NEW.id);
	END IF;
	PERFORM "session_changes_wake"(TG_RELID, left(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 63));
	RETURN NULL;
END
$$;
--> statement-breakpoint
-- Deletes are captured per statement: one row per deleted session, or a single "everything" row (null
-- session_id) when a statement deletes more than 10000 sessions, so a bulk delete never floods the feed.
CREATE OR REPLACE FUNCTION "session_changes_capture_delete"() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	n bigint;
BEGIN
	SELECT count(*) INTO n FROM (SELECT 1 FROM deleted_rows LIMIT 10001) AS d;
	IF n = 0 THEN
		RETURN NULL;
	ELSIF n > 10000 THEN
		INSERT INTO "session_changes" (session_id) VALUES (NULL);
	ELSE
		INSERT INTO "session_changes" (session_id) SELECT id FROM deleted_rows;
	END IF;
	PERFORM "session_changes_wake"(TG_RELID, left(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 63));
	RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "session_changes_capture_truncate"() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	INSERT INTO "session_changes" (session_id) VALUES (NULL);
	PERFORM "session_changes_wake"(TG_RELID, left(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 63));
	RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "sessions_capture_update" AFTER UPDATE ON "sessions" FOR EACH ROW
WHEN (
	OLD.token_hash IS DISTINCT FROM NEW.token_hash OR OLD.attributes IS DISTINCT FROM NEW.attributes
	OR OLD.version IS DISTINCT FROM NEW.version OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
	OR OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.group_id IS DISTINCT FROM NEW.group_id
	OR OLD.id IS DISTINCT FROM NEW.id
)
EXECUTE FUNCTION "session_changes_capture_update"();
--> statement-breakpoint
CREATE TRIGGER "sessions_capture_delete" AFTER DELETE ON "sessions" REFERENCING OLD TABLE AS deleted_rows
FOR EACH STATEMENT EXECUTE FUNCTION "session_changes_capture_delete"();
--> statement-breakpoint
CREATE TRIGGER "sessions_capture_truncate" AFTER TRUNCATE ON "sessions"
FOR EACH STATEMENT EXECUTE FUNCTION "session_changes_capture_truncate"();
--> statement-breakpoint
INSERT INTO "session_changes_horizon" (id, pruned_below) VALUES (1, '0'::xid8) ON CONFLICT (id) DO NOTHING;
