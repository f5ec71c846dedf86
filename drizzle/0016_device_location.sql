-- Where a session is: the client's location at sign-in as its platform or a trusted proxy reported it
-- (country, region, city, Cloudflare colo; see src/middleware/client-ip.ts), a small json object, null when unknown.
ALTER TABLE "sessions" ADD COLUMN "location" jsonb;
--> statement-breakpoint
-- createSession with p_location (eighteen arguments): where the client was at sign-in, stored with the
-- session. The seventeen-argument one of drizzle/0014 stays for releases that still call it (their sessions
-- have no location).
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
	p_known json,
	p_user_agent text,
	p_device text,
	p_ip text,
	p_label text,
	p_audit boolean,
	p_audit_max_per_user integer,
	p_impersonated_by text,
	p_location jsonb
) RETURNS TABLE (evicted_id uuid, too_large integer, audit_error text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
	n integer;
	size integer;
BEGIN
	IF p_max_bytes IS NOT NULL THEN
		size := octet_length(p_attributes::text);
		IF size > p_max_bytes THEN
			RETURN QUERY SELECT NULL::uuid, size, NULL::text;
			RETURN;
		END IF;
	END IF;
	PERFORM pg_advisory_xact_lock('"sessions"'::regclass::oid::integer, hashtext(p_user_id));
	INSERT INTO "sessions" (id, token_hash, user_id, group_id, attributes, version, created_at, updated_at, last_accessed, expires_at,
		user_agent, device, ip, label, authenticated_at, impersonated_by, location)
	VALUES (p_id, p_token_hash, p_user_id, p_group_id, p_attributes, 1, p_now, p_now, p_now, p_expires_at,
		p_user_agent, p_device, p_ip, p_label, p_now, p_impersonated_by, p_location);
	-- An impersonation never evicts the user's own sessions (an administrator looking does not sign the user
	-- out); its short lifetime bounds it.
	IF p_impersonated_by IS NOT NULL THEN
		RETURN;
	END IF;
	SELECT count(*) INTO n FROM (SELECT 1 FROM "sessions" AS x WHERE x.user_id = p_user_id LIMIT p_max_sessions + 1) AS c;
	IF n <= p_max_sessions THEN
		RETURN;
	END IF;
	RETURN QUERY
	WITH d AS (
		DELETE FROM "sessions" AS s
		WHERE s.id IN (
			SELECT x.id FROM "sessions" AS x
			LEFT JOIN (SELECT k.id, max(to_timestamp(k.ms / 1000)) AS at FROM json_to_recordset(p_known) AS k(id uuid, ms float8) GROUP BY k.id) AS k
				ON k.id = x.id
			WHERE x.user_id = p_user_id AND x.id <> p_id
			ORDER BY (x.expires_at > p_now) DESC, GREATEST(x.last_accessed, k.at) DESC, x.created_at DESC, x.id DESC
			OFFSET greatest(p_max_sessions - 1, 0)
		)
		RETURNING s.id, s.user_id, s.group_id, s.created_at, s.last_accessed, s.user_agent, s.device, s.ip, s.label, s.token_hash, s.impersonated_by
	), a AS (
		SELECT CASE WHEN p_audit THEN "session_audit_write"((
			SELECT json_agg(json_build_object('session_id', d.id, 'user_id', d.user_id, 'group_id', d.group_id, 'reason', 'evicted',
				'ended_at', p_now, 'created_at', d.created_at, 'last_accessed', d.last_accessed, 'user_agent', d.user_agent,
				'device', d.device, 'ip', d.ip, 'label', d.label, 'actor_kind', 'eviction', 'actor_id', p_id,
				'token_check', "session_token_check"(d.token_hash), 'impersonated_by', d.impersonated_by))
			FROM d), p_audit_max_per_user) END AS e
	)
	SELECT d.id, NULL::integer, (SELECT a.e FROM a) FROM d;
END
$$;
