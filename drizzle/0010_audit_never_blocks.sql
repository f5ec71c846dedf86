-- Ending a session never depends on its audit row. session_audit_write records the rows given (a json
-- array of session_audit rows) in a sub-block of its own: when the insert fails (a permission, a constraint,
-- a trigger, a full disk) the sub-block is rolled back alone and the function returns the error
-- ('SQLSTATE message'), so the statement that ended the sessions still commits and the caller reports it.
-- NULL: written (or nothing to write; an empty call starts no subtransaction). p_max_per_user > 0 keeps at
-- most that many rows for each user written (the newest by ended_at; rows ending at the same instant as the
-- last one kept stay too), in a second sub-block: a failed trim leaves the rows, and is retried by the
-- user's next write.
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
		INSERT INTO "session_audit" (session_id, user_id, group_id, reason, ended_at, created_at, last_accessed, user_agent, device, ip, label)
		SELECT r.session_id, r.user_id, r.group_id, r.reason, r.ended_at, r.created_at, r.last_accessed, r.user_agent, r.device, r.ip, r.label
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
-- createSession as drizzle/0008's, but the audit rows of evicted sessions go through session_audit_write:
-- an eviction never fails because its audit row cannot be written; the error comes back in audit_error
-- (on every evicted row). The fifteen-argument one of drizzle/0008 stays for releases that still call it.
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
	p_audit_max_per_user integer
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
		SELECT CASE WHEN p_audit THEN "session_audit_write"((
			SELECT json_agg(json_build_object('session_id', d.id, 'user_id', d.user_id, 'group_id', d.group_id, 'reason', 'evicted',
				'ended_at', p_now, 'created_at', d.created_at, 'last_accessed', d.last_accessed, 'user_agent', d.user_agent,
				'device', d.device, 'ip', d.ip, 'label', d.label))
			FROM d), p_audit_max_per_user) END AS e
	)
	SELECT d.id, NULL::integer, (SELECT a.e FROM a) FROM d;
END
$$;
