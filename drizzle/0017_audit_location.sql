-- Where a session was, kept when it ends: the audit row of a session's end carries the session's location
-- (drizzle/0016), listed by listSessionEnds and sessionEnd, and read by the new-device check (a kept end's
-- country). Null on rows written before this column, and on rows an earlier release writes during a rollout
-- (its audit json has no location).
ALTER TABLE "session_audit" ADD COLUMN "location" jsonb;
--> statement-breakpoint
-- drizzle/0014's session_audit_write, writing location too (same signature: the statements of src/db/audit.ts
-- copy it from the ended session; an earlier release's rows leave it null).
CREATE OR REPLACE FUNCTION "session_audit_write"(p_rows json, p_max_per_user integer) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	u text;
	keep_from timestamptz;
BEGIN
	IF p_rows IS NULL THEN
		RETURN NULL;
	END IF;
	BEGIN
		INSERT INTO "session_audit" (session_id, user_id, group_id, reason, ended_at, created_at, last_accessed, user_agent, device, ip, label,
			actor_kind, actor_id, token_check, impersonated_by, location)
		SELECT r.session_id, r.user_id, r.group_id, r.reason, r.ended_at, r.created_at, r.last_accessed, r.user_agent, r.device, r.ip, r.label,
			r.actor_kind, r.actor_id, r.token_check, r.impersonated_by, r.location
		FROM json_populate_recordset(NULL::"session_audit", p_rows) AS r;
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE || ' ' || SQLERRM;
	END;
	IF p_max_per_user > 0 THEN
		BEGIN
			-- Per user written (one, but for bulk deletes): the end time of its p_max_per_user-th newest row (an
			-- index walk of at most that many entries, null while it has fewer), and the rows older than that go.
			FOR u IN SELECT DISTINCT r.user_id FROM json_populate_recordset(NULL::"session_audit", p_rows) AS r LOOP
				SELECT y.ended_at INTO keep_from FROM "session_audit" AS y WHERE y.user_id = u
					ORDER BY y.ended_at DESC OFFSET p_max_per_user - 1 LIMIT 1;
				IF keep_from IS NOT NULL THEN
					DELETE FROM "session_audit" AS a WHERE a.user_id = u AND a.ended_at < keep_from;
				END IF;
			END LOOP;
		EXCEPTION WHEN OTHERS THEN
			NULL;
		END;
	END IF;
	RETURN NULL;
END
$$;
--> statement-breakpoint
-- drizzle/0016's createSession (eighteen arguments, same signature), copying the location of the sessions it
-- evicts into their audit rows.
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
		RETURNING s.id, s.user_id, s.group_id, s.created_at, s.last_accessed, s.user_agent, s.device, s.ip, s.label, s.token_hash, s.impersonated_by, s.location
	), a AS (
		SELECT CASE WHEN p_audit THEN "session_audit_write"((
			SELECT json_agg(json_build_object('session_id', d.id, 'user_id', d.user_id, 'group_id', d.group_id, 'reason', 'evicted',
				'ended_at', p_now, 'created_at', d.created_at, 'last_accessed', d.last_accessed, 'user_agent', d.user_agent,
				'device', d.device, 'ip', d.ip, 'label', d.label, 'actor_kind', 'eviction', 'actor_id', p_id,
				'token_check', "session_token_check"(d.token_hash), 'impersonated_by', d.impersonated_by, 'location', d.location))
			FROM d), p_audit_max_per_user) END AS e
	)
	SELECT d.id, NULL::integer, (SELECT a.e FROM a) FROM d;
END
$$;
