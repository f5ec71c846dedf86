-- createSession with device metadata (drizzle/0007's columns) and, with p_audit, a session_audit row per
-- session evicted beyond maxSessions, in the same statement. Otherwise drizzle/0006's contract: p_max_bytes
-- refuses oversized attributes (one row (NULL, size), nothing written), p_known ranks eviction by the
-- caller's newest known accesses, one row (evicted_id, NULL) per evicted session.
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
	p_audit boolean
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
	INSERT INTO "sessions" (id, token_hash, user_id, group_id, attributes, version, created_at, updated_at, last_accessed, expires_at,
		user_agent, device, ip, label)
	VALUES (p_id, p_token_hash, p_user_id, p_group_id, p_attributes, 1, p_now, p_now, p_now, p_expires_at,
		p_user_agent, p_device, p_ip, p_label);
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
		RETURNING s.id, s.user_id, s.group_id, s.created_at, s.last_accessed, s.user_agent, s.device, s.ip, s.label
	), a AS (
		INSERT INTO "session_audit" (session_id, user_id, group_id, reason, ended_at, created_at, last_accessed, user_agent, device, ip, label)
		SELECT d.id, d.user_id, d.group_id, 'evicted', p_now, d.created_at, d.last_accessed, d.user_agent, d.device, d.ip, d.label
		FROM d WHERE p_audit
	)
	SELECT d.id, NULL::integer FROM d;
END
$$;
--> statement-breakpoint
-- drizzle/0006's ten-argument session_create was never released; the fifteen-argument one replaces it. The
-- eight-argument one of drizzle/0001/0005 stays for releases that still call it.
DROP FUNCTION IF EXISTS "session_create"(uuid, bytea, text, text, jsonb, timestamptz, timestamptz, integer, integer, json);
