-- Cheaper writes (and reads), same contract: the same rows, change records, wake-ups and errors.
--
-- 1. The row json every hot statement returns (drizzle/0014's session_row_json), now inlined into its
-- callers instead of run as a separate SQL function on every call. Same body, same result; only the
-- declared volatility changes, IMMUTABLE -> STABLE. PostgreSQL inlines a SQL function into the calling
-- statement only when it is declared no less volatile than its body, and the body's extract(epoch from
-- timestamptz) is STABLE. Declared IMMUTABLE, it was never inlined (drizzle/0012's "inlined" was not
-- true): every session_get, session_update, rotate and reauthenticate (RETURNING session_row_json(s))
-- parsed, analysed and planned the function's SELECT again (fmgr_sql: 17% of a session_update's backend
-- samples under perf). STABLE is what the body is; nothing indexes or stores the function's result.
--
-- Measured (backend CPU from /proc/self/schedstat, a session_update-shaped function calling each variant,
-- 1,500 interleaved calls each, PostgreSQL 15): 737 -> 593 and 743 -> 586 us per call including its
-- commit. npm run bench:opcost before/after: bench/README.md, "Write cost".
--
-- 2. session_update (drizzle/0015's, same signature) tries the common update first: attributes set without
-- an expiry, none deleted, no attribute compare-and-set. That statement has one subquery (the merge) where
-- the full one has six, each set up by the executor on every call whether it runs or not; when it writes
-- nothing, the full statement runs as before and decides (exact size, reason). Measured the same way:
-- 610 -> 508 and 542 -> 502 us per call.
--
-- Kept as it was: updates stay captured by drizzle/0018's per-row trigger. Skipping it for session_update
-- (the function inserting its change row in a data-modifying CTE, the trigger gated by a WHEN clause on a
-- setting the function sets) measured no better (634 vs 646, 732 vs 797 us per call, same measurement):
-- the insert, the lock try and the notification are the cost, not the trigger around them.
--
-- Existing databases: CREATE OR REPLACE of the same signatures, so every function and statement that
-- calls them (earlier releases' included) picks the new forms at its next plan; no table, change record or
-- cursor is touched, and an earlier release keeps working against them unchanged.
CREATE OR REPLACE FUNCTION "session_row_json"(s "sessions") RETURNS json
LANGUAGE sql STABLE AS $$
	SELECT json_build_object('id', s.id, 'user_id', s.user_id, 'group_id', s.group_id, 'attributes', s.attributes,
		'version', s.version, 'created_at', (extract(epoch from s.created_at) * 1000)::float8,
		'updated_at', (extract(epoch from s.updated_at) * 1000)::float8,
		'last_accessed', (extract(epoch from s.last_accessed) * 1000)::float8,
		'expires_at', (extract(epoch from s.expires_at) * 1000)::float8,
		'authenticated_at', (extract(epoch from COALESCE(s.authenticated_at, s.created_at)) * 1000)::float8,
		'impersonated_by', s.impersonated_by)
$$;
--> statement-breakpoint
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
	-- The common update: attributes set without expiries, none deleted, no attribute compare-and-set. The
	-- same merge as below (each changed key's version bumped from the row's own, in the UPDATE itself, so
	-- READ COMMITTED's recheck of a concurrently updated row merges into the newest version: no key lost)
	-- with one subquery instead of six: the cleanup deadline cannot move, nothing is removed, and the cheap
	-- size bound is enough. When it writes nothing (no such live session, a version conflict, or the bound
	-- exceeded) the full statement below decides, with the exact size and the reason.
	IF p_expect_attributes IS NULL AND p_deleted = '[]'::jsonb AND NOT p_changes @? '$.*.exp' THEN
		UPDATE "sessions" AS s SET
			attributes = s.attributes || COALESCE((SELECT jsonb_object_agg(c.key, c.value || jsonb_build_object('ver', COALESCE((s.attributes -> c.key ->> 'ver')::integer, 0) + 1))
				FROM jsonb_each(p_changes) AS c), '{}'::jsonb),
			version = s.version + 1,
			updated_at = p_now
		WHERE s.token_hash = p_token_hash AND s.id = p_id AND s.expires_at > p_now
			AND (p_expect_version IS NULL OR s.version = p_expect_version)
			AND (p_max_bytes IS NULL OR octet_length(s.attributes::text) + 3 * octet_length(p_changes::text) <= p_max_bytes)
		RETURNING json_build_object('updated', true, 'row', "session_row_json"(s)) INTO r;
		IF r IS NOT NULL THEN
			RETURN r;
		END IF;
	END IF;
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
