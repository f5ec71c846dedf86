/**
 * A sign-in over an old session in one statement: the create statement of src/db/statements.ts (`create` or
 * `createChecked`, parameters $1..$18) with, before it, the delete of the session it replaces ($19: the old
 * token's hash, hex; $20: its id when known) and that session's audit row (reason `replaced`, by its holder,
 * ended at the create's `now`, when $15 `audit` is on). What a delete then a create did in two statements:
 * the delete runs first (CTE `o` reads it to its end before the create's function is called, through the
 * LATERAL reference), so the create function's per-user count and eviction see the old session gone. The
 * new-device check reads the statement's snapshot, where the old session is still there: it counts as the
 * user's session on its device (as its audit row did when the delete came first).
 */
import { AUDIT_SOURCE_TEXT, auditCteText } from './audit.ts';
import { type Statement, statement } from './executor.ts';
import type { ObjectNames } from './names.ts';

const made = new WeakMap<Statement, Statement>();

/**
 * `create` (a statement of hotStatements(n)) replacing an old session; its rows gain `replaced` (the ids
 * deleted, or null) and `replaced_audit_error`, and there is always at least one row.
 */
export function replacingStatement(n: ObjectNames, create: Statement): Statement {
  const known = made.get(create);
  if (known !== undefined) return known;
  const byHolder = { reason: `'replaced'`, ended_at: '$6::timestamptz', actor_kind: `'user'`, actor_id: 'NULL::text' };
  const st = statement(
    `WITH r AS (DELETE FROM ${n.sessions} WHERE token_hash = decode($19, 'hex') AND ($20::uuid IS NULL OR id = $20::uuid)
        RETURNING ${AUDIT_SOURCE_TEXT}),
      d AS (SELECT * FROM r WHERE $15::boolean), ${auditCteText(n, byHolder, '$16::integer')},
      o AS MATERIALIZED (SELECT (SELECT array_agg(r.id::text) FROM r) AS replaced, (SELECT e FROM a) AS replaced_audit_error)
    SELECT c.*, o.replaced, o.replaced_audit_error FROM o
      LEFT JOIN LATERAL (SELECT * FROM (${create.text}) AS q WHERE o.replaced IS NULL OR o.replaced IS NOT NULL OFFSET 0) AS c ON true`,
  );
  made.set(create, st);
  return st;
}

/** A row of the create statements (`replaced`, `replaced_audit_error`: the replacing form's). */
export interface CreateRow {
  id: string | null;
  too_large: number | null;
  audit_error: string | null;
  new_device?: boolean;
  replaced?: string[] | null;
  replaced_audit_error?: string | null;
}
