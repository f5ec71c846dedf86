-- The hot statements as PL/pgSQL functions. A statement sent one-off (what drizzle's db.execute does on
-- every driver: node-postgres, neon-serverless, neon-http, postgres-js) is parsed and planned on every
-- call; the statements inside a PL/pgSQL function are planned once per connection and their plans reused,
-- on every driver and through any pooler. The call itself is a trivial statement to plan.
--
-- Rows come back as one json value (times as milliseconds since the epoch, exact: the columns hold
-- milliseconds), so every driver reads the same plain values, and one column costs less to send and
-- decode than nine.
--
-- Touches (updates of last_accessed only) and attribute updates are HOT updates (no index entry written)
-- when the row's page has room: no index holds the columns they change (drizzle/0004), and inserts leave
-- 30% of every page free. Every session is updated again and again (each flush of touches), the classic
-- case for a fillfactor below 100; the price is a table about 1.4 times as large.
ALTER TABLE "sessions" SET (fillfactor = 70);
--> statement-breakpoint
-- Stores made with a table prefix by earlier releases named this column "<prefix>session_id" (migrate()
-- prefixed it like an object name), so capturing a change failed there; give it its name.
DO $$
DECLARE
	c name;
BEGIN
	SELECT a.attname INTO c FROM pg_attribute AS a
	WHERE a.attrelid = '"session_changes"'::regclass AND a.attnum > 0 AND NOT a.attisdropped
		AND a.attname LIKE '%session\_id' AND a.attname <> 'session_id';
	IF c IS NOT NULL THEN
		EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO session_id', '"session_changes"'::regclass, c);
	END IF;
END
$$;
--> statement-breakpoint
-- The capture trigger of drizzle/0003, now column-specific: a statement that sets none of these columns
-- (a touch sets last_accessed only) skips it outright instead of evaluating its WHEN clause row by row.
-- A statement that changes one of them names it in SET (psql included), so every change is still
-- captured; only a BEFORE UPDATE trigger of your own changing one of them behind a statement that does not
-- set it would go unseen.
CREATE OR REPLACE TRIGGER "sessions_capture_update"
AFTER UPDATE OF token_hash, attributes, version, expires_at, user_id, group_id, id ON "sessions" FOR EACH ROW
WHEN (
	OLD.token_hash IS DISTINCT FROM NEW.token_hash OR OLD.attributes IS DISTINCT FROM NEW.attributes
	OR OLD.version IS DISTINCT FROM NEW.version OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
	OR OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.group_id IS DISTINCT FROM NEW.group_id
	OR OLD.id IS DISTINCT FROM NEW.id
)
EXECUTE FUNCTION "session_changes_capture_update"();
--> statement-breakpoint
-- getSession by token hash: the row as one json value, or null. VOLATILE: a read through it is never
-- cached by a proxy that caches read-only queries (Cloudflare Hyperdrive caches queries that call no
-- volatile function).
CREATE OR REPLACE FUNCTION "session_get"(p_token_hash bytea) RETURNS json
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RETURN (SELECT json_build_object('id', s.id, 'user_id', s.user_id, 'group_id', s.group_id, 'attributes', s.attributes,
		'version', s.version, 'created_at', (extract(epoch from s.created_at) * 1000)::float8,
		'updated_at', (extract(epoch from s.updated_at) * 1000)::float8,
		'last_accessed', (extract(epoch from s.last_accessed) * 1000)::float8,
		'expires_at', (extract(epoch from s.expires_at) * 1000)::float8)
		FROM "sessions" AS s WHERE s.token_hash = p_token_hash);
END
$$;
--> statement-breakpoint
-- updateSession: merges the changed attributes (bumping each one's version) and removes the deleted ones;
-- other attributes are untouched, so concurrent updates of different keys both survive. With
-- p_expect_version / p_expect_attributes ({"key": version}) it is a compare-and-set. Every check is a
-- condition on the target row itself (the attribute check a scalar subquery over that row's attributes,
-- never a join), so READ COMMITTED's recheck of a row updated concurrently evaluates it again on the new
-- row version: two compare-and-sets of one attribute never both succeed. Returns the row written with
-- "updated": true; when nothing was written, the current row with "updated": false (the caller tells a
-- conflict from an expired session); null when there is no such session.
CREATE OR REPLACE FUNCTION "session_update"(
	p_id uuid,
	p_changes jsonb,
	p_deleted jsonb,
	p_now timestamptz,
	p_expect_version integer,
	p_expect_attributes jsonb
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
		updated_at = p_now
	WHERE s.id = p_id AND s.expires_at > p_now
		AND (p_expect_version IS NULL OR s.version = p_expect_version)
		AND (p_expect_attributes IS NULL OR COALESCE((
			SELECT bool_and(COALESCE((s.attributes -> e.key ->> 'ver')::integer, 0) = e.value::integer)
			FROM jsonb_each_text(p_expect_attributes) AS e), true))
	RETURNING json_build_object('updated', true, 'row', json_build_object('id', s.id, 'user_id', s.user_id, 'group_id', s.group_id, 'attributes', s.attributes,
		'version', s.version, 'created_at', (extract(epoch from s.created_at) * 1000)::float8,
		'updated_at', (extract(epoch from s.updated_at) * 1000)::float8,
		'last_accessed', (extract(epoch from s.last_accessed) * 1000)::float8,
		'expires_at', (extract(epoch from s.expires_at) * 1000)::float8)) INTO r;
	IF r IS NULL THEN
		SELECT json_build_object('updated', false, 'row', json_build_object('id', s.id, 'user_id', s.user_id, 'group_id', s.group_id, 'attributes', s.attributes,
			'version', s.version, 'created_at', (extract(epoch from s.created_at) * 1000)::float8,
			'updated_at', (extract(epoch from s.updated_at) * 1000)::float8,
			'last_accessed', (extract(epoch from s.last_accessed) * 1000)::float8,
			'expires_at', (extract(epoch from s.expires_at) * 1000)::float8)) INTO r
		FROM "sessions" AS s WHERE s.id = p_id;
	END IF;
	RETURN r;
END
$$;
--> statement-breakpoint
-- session_create (drizzle/0001) again, same contract: most creates evict nothing, so the user's sessions
-- are counted first (through the user index) and the eviction DELETE, whose statement-level capture
-- trigger fires even when it deletes no row, only runs when the user is over the limit.
CREATE OR REPLACE FUNCTION "session_create"(
	p_id uuid,
	p_token_hash bytea,
	p_user_id text,
	p_group_id text,
	p_attributes jsonb,
	p_now timestamptz,
	p_expires_at timestamptz,
	p_max_sessions integer
) RETURNS TABLE (evicted_id uuid)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
	n integer;
BEGIN
	PERFORM pg_advisory_xact_lock('"sessions"'::regclass::oid::integer, hashtext(p_user_id));
	INSERT INTO "sessions" (id, token_hash, user_id, group_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
	VALUES (p_id, p_token_hash, p_user_id, p_group_id, p_attributes, 1, p_now, p_now, p_now, p_expires_at);
	SELECT count(*) INTO n FROM (SELECT 1 FROM "sessions" AS x WHERE x.user_id = p_user_id LIMIT p_max_sessions + 1) AS c;
	IF n <= p_max_sessions THEN
		RETURN;
	END IF;
	RETURN QUERY
	DELETE FROM "sessions" AS s
	WHERE s.id IN (
		SELECT x.id FROM "sessions" AS x
		WHERE x.user_id = p_user_id AND x.id <> p_id
		ORDER BY (x.expires_at > p_now) DESC, x.last_accessed DESC, x.created_at DESC, x.id DESC
		OFFSET greatest(p_max_sessions - 1, 0)
	)
	RETURNING s.id;
END
$$;
