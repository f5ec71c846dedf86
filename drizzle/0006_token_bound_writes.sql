-- A session's row as one json value (times as ms since the epoch), shared by the functions below. A SQL
-- function over the row type: the planner inlines it, so it costs what the expression written out costs.
CREATE OR REPLACE FUNCTION "session_row_json"(s "sessions") RETURNS json
LANGUAGE sql IMMUTABLE AS $$
	SELECT json_build_object('id', s.id, 'user_id', s.user_id, 'group_id', s.group_id, 'attributes', s.attributes,
		'version', s.version, 'created_at', (extract(epoch from s.created_at) * 1000)::float8,
		'updated_at', (extract(epoch from s.updated_at) * 1000)::float8,
		'last_accessed', (extract(epoch from s.last_accessed) * 1000)::float8,
		'expires_at', (extract(epoch from s.expires_at) * 1000)::float8)
$$;
--> statement-breakpoint
-- updateSession, bound to the token the session was loaded through: the row must still carry that token's
-- hash, so a Session loaded by a token that has since been rotated away (or whose session was deleted)
-- writes nothing, and the caller may cache the row it gets back under that token (the statement proved the
-- token current). Otherwise as drizzle/0005's session_update: changed attributes are merged (each one's
-- version bumped), deleted ones removed, compare-and-set checks evaluated on the target row itself.
-- p_max_bytes bounds the stored attributes (octet_length of their jsonb text); checked on the merged value,
-- so concurrent writers of different keys cannot together pass it. A cheap upper bound (current size plus
-- the changes, plus room for each change's version field) skips the exact measure for most updates.
-- Returns {"updated": true, "row"} when written; {"updated": false, "reason", "size"?, "row"} when the
-- row is there but nothing was written (reason: expired, conflict or too_large); null when no session has
-- this id and token hash.
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
	n_changes integer := (SELECT count(*) FROM jsonb_object_keys(p_changes));
BEGIN
	UPDATE "sessions" AS s SET
		attributes = (s.attributes - ARRAY(SELECT jsonb_array_elements_text(p_deleted)))
			|| COALESCE((SELECT jsonb_object_agg(c.key, c.value || jsonb_build_object('ver', COALESCE((s.attributes -> c.key ->> 'ver')::integer, 0) + 1))
			             FROM jsonb_each(p_changes) AS c), '{}'::jsonb),
		version = s.version + 1,
		updated_at = p_now
	WHERE s.token_hash = p_token_hash AND s.id = p_id AND s.expires_at > p_now
		AND (p_expect_version IS NULL OR s.version = p_expect_version)
		AND (p_expect_attributes IS NULL OR COALESCE((
			SELECT bool_and(COALESCE((s.attributes -> e.key ->> 'ver')::integer, 0) = e.value::integer)
			FROM jsonb_each_text(p_expect_attributes) AS e), true))
		AND (p_max_bytes IS NULL
			OR octet_length(s.attributes::text) + octet_length(p_changes::text) + 24 * n_changes <= p_max_bytes
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
--> statement-breakpoint
-- createSession with two additions to drizzle/0005's contract:
-- * p_max_bytes: a new session whose attributes' jsonb text is larger is not created; the function then
--   returns one row (NULL, size) and writes nothing.
-- * p_known ([{"id", "ms"}]): the creating manager's newest known last access of sessions (touches it has not
--   written yet, or that another process holds); max-sessions eviction ranks by the newer of that and the
--   stored last access, so "least recently used" means what the caller knows, not what was last flushed.
-- Otherwise it returns one row (evicted_id, NULL) per evicted session.
CREATE OR REPLACE FUNCTION "session_create"(
	p_id uuid,
	p_token_hash bytea,
	p_user_id text,
	p_group_id text,
	p_attributes jsonb,
	p_now timestamptz,
	p_expires_at timestamptz,
	p_max_sessions integer,
	p_max_bytes integer,
	p_known json
) RETURNS TABLE (evicted_id uuid, too_large integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
	n integer;
	size integer;
BEGIN
	IF p_max_bytes IS NOT NULL THEN
		size := octet_length(p_attributes::text);
		IF size > p_max_bytes THEN
			RETURN QUERY SELECT NULL::uuid, size;
			RETURN;
		END IF;
	END IF;
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
		LEFT JOIN (SELECT k.id, max(to_timestamp(k.ms / 1000)) AS at FROM json_to_recordset(p_known) AS k(id uuid, ms float8) GROUP BY k.id) AS k
			ON k.id = x.id
		WHERE x.user_id = p_user_id AND x.id <> p_id
		ORDER BY (x.expires_at > p_now) DESC, GREATEST(x.last_accessed, k.at) DESC, x.created_at DESC, x.id DESC
		OFFSET greatest(p_max_sessions - 1, 0)
	)
	RETURNING s.id, NULL::integer;
END
$$;
