-- Step-up freshness: when the session's user last proved who they are (the sign-in, or the latest
-- reauthenticate, which moves it forward; rotate keeps it). Nullable, and null means "at creation"
-- (created_at): existing rows need no rewrite, and a session an earlier release creates during a rollout
-- (its session_create does not know the column) reads as authenticated when it was created.
ALTER TABLE "sessions" ADD COLUMN "authenticated_at" timestamp (3) with time zone;
--> statement-breakpoint
-- drizzle/0006's row json with "authenticated_at" (ms since the epoch, never null). Readers of earlier
-- releases ignore the extra key.
CREATE OR REPLACE FUNCTION "session_row_json"(s "sessions") RETURNS json
LANGUAGE sql IMMUTABLE AS $$
	SELECT json_build_object('id', s.id, 'user_id', s.user_id, 'group_id', s.group_id, 'attributes', s.attributes,
		'version', s.version, 'created_at', (extract(epoch from s.created_at) * 1000)::float8,
		'updated_at', (extract(epoch from s.updated_at) * 1000)::float8,
		'last_accessed', (extract(epoch from s.last_accessed) * 1000)::float8,
		'expires_at', (extract(epoch from s.expires_at) * 1000)::float8,
		'authenticated_at', (extract(epoch from COALESCE(s.authenticated_at, s.created_at)) * 1000)::float8)
$$;
--> statement-breakpoint
-- drizzle/0005's getSession, returning the same row json as the writes (session_row_json, inlined).
CREATE OR REPLACE FUNCTION "session_get"(p_token_hash bytea) RETURNS json
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	RETURN (SELECT "session_row_json"(s) FROM "sessions" AS s WHERE s.token_hash = p_token_hash);
END
$$;
