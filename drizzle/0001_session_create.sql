-- Creates a session and enforces maxSessions in one statement (one round trip, works over Neon's HTTP
-- driver). The advisory lock serializes creates of one user; because this is a volatile PL/pgSQL
-- function, each statement after the lock takes a fresh snapshot (READ COMMITTED) and so sees the
-- sessions committed by the create it waited for. A CTE could not: its snapshot predates the lock.
-- Expired sessions of the user go first, then the least recently used; the new session is never evicted.
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
BEGIN
	PERFORM pg_advisory_xact_lock('"sessions"'::regclass::oid::integer, hashtext(p_user_id));
	INSERT INTO "sessions" (id, token_hash, user_id, group_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
	VALUES (p_id, p_token_hash, p_user_id, p_group_id, p_attributes, 1, p_now, p_now, p_now, p_expires_at);
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
