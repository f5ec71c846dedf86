-- Cleanup whose cost follows what it deletes. Each session has a cleanup deadline: the earliest moment it
-- may have to go (absolute expiry, idle timeout, re-authentication period, an attribute's expiry), as known
-- when it was last set. cleanup_at holds it; null means "not set yet", and then the absolute expiry stands
-- for it (sessions_cleanup_idx indexes LEAST(cleanup_at, expires_at): least() ignores a null) while
-- sessions_unarmed_idx finds the unset ones by age. Cleanup reads only the rows whose deadline has passed
-- (src/db/store.ts, cleanupDue): it deletes those that are expired and sets a later deadline on the others
-- (a session touched since), so a touch never writes cleanup_at and stays a HOT update, as do attribute
-- updates that set no expiry. Touches only move deadlines later, so a stored deadline is never late.
--
-- Both indexes are built here with CREATE INDEX IF NOT EXISTS, inside migrate()'s transaction: on a large
-- table, build them beforehand with CREATE INDEX CONCURRENTLY under the same names (README, "Schema and
-- migrations"), and this migration only adds what is missing.
ALTER TABLE "sessions" ADD COLUMN IF NOT EXISTS "cleanup_at" timestamp (3) with time zone;
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "sessions_cleanup_idx" ON "sessions" USING btree (LEAST("cleanup_at", "expires_at"));
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "sessions_unarmed_idx" ON "sessions" USING btree ("created_at") WHERE "cleanup_at" IS NULL;
--> statement-breakpoint
-- drizzle/0009's session_update (same signature, replaced in place, so an earlier release's statements
-- keep working), now moving the cleanup deadline back to an attribute's expiry.
CREATE OR REPLACE FUNCTION "session_update"(
	p_id uuid,
	p_token_hash bytea,
	p_changes jsonb,
	p_deleted jsonb,
	p_now timestamptz,
	p_expect_version integer,
	p_expect_attributes jsonb,
	p_max_bytes integer
) RETURNS json
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	r json;
BEGIN
	UPDATE "sessions" AS s SET
		attributes = (s.attributes - ARRAY(SELECT jsonb_array_elements_text(p_deleted)))
			|| COALESCE((SELECT jsonb_object_agg(c.key, c.value || jsonb_build_object('ver', COALESCE((s.attributes -> c.key ->> 'ver')::integer, 0) + 1))
			             FROM jsonb_each(p_changes) AS c), '{}'::jsonb),
		version = s.version + 1,
		updated_at = p_now,
		-- An attribute given an expiry makes the session due for cleanup by then at the latest: the cleanup
		-- deadline moves back to it (never forward; a session not yet given one gets its creation time, so
		-- the next cleanup gives it its full deadline). A value that does not change keeps the update HOT.
		cleanup_at = CASE WHEN p_changes @? '$.*.exp' THEN LEAST(COALESCE(s.cleanup_at, s.created_at),
			(SELECT to_timestamp(min((c.value ->> 'exp')::float8) / 1000) FROM jsonb_each(p_changes) AS c
			 WHERE jsonb_typeof(c.value -> 'exp') = 'number')) ELSE s.cleanup_at END
	WHERE s.token_hash = p_token_hash AND s.id = p_id AND s.expires_at > p_now
		AND (p_expect_version IS NULL OR s.version = p_expect_version)
		AND (p_expect_attributes IS NULL OR COALESCE((
			SELECT bool_and(COALESCE((s.attributes -> e.key ->> 'ver')::integer, 0) = e.value::integer)
			FROM jsonb_each_text(p_expect_attributes) AS e), true))
		AND (p_max_bytes IS NULL
			OR octet_length(s.attributes::text) + 3 * octet_length(p_changes::text) <= p_max_bytes
			OR octet_length(((s.attributes - ARRAY(SELECT jsonb_array_elements_text(p_deleted)))
				|| COALESCE((SELECT jsonb_object_agg(c.key, c.value || jsonb_build_object('ver', COALESCE((s.attributes -> c.key ->> 'ver')::integer, 0) + 1))
				             FROM jsonb_each(p_changes) AS c), '{}'::jsonb))::text) <= p_max_bytes)
	RETURNING json_build_object('updated', true, 'row', "session_row_json"(s)) INTO r;
	IF r IS NULL THEN
		SELECT json_build_object('updated', false,
			'reason', CASE
				WHEN s.expires_at <= p_now THEN 'expired'
				WHEN (p_expect_version IS NOT NULL AND s.version <> p_expect_version) OR (p_expect_attributes IS NOT NULL AND NOT COALESCE((
					SELECT bool_and(COALESCE((s.attributes -> e.key ->> 'ver')::integer, 0) = e.value::integer)
					FROM jsonb_each_text(p_expect_attributes) AS e), true)) THEN 'conflict'
				ELSE 'too_large' END,
			'size', octet_length(((s.attributes - ARRAY(SELECT jsonb_array_elements_text(p_deleted)))
				|| COALESCE((SELECT jsonb_object_agg(c.key, c.value || jsonb_build_object('ver', COALESCE((s.attributes -> c.key ->> 'ver')::integer, 0) + 1))
				             FROM jsonb_each(p_changes) AS c), '{}'::jsonb))::text),
			'row', "session_row_json"(s)) INTO r
		FROM "sessions" AS s WHERE s.token_hash = p_token_hash AND s.id = p_id;
	END IF;
	RETURN r;
END
$$;
