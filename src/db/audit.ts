/**
 * The audit table (`session_audit`, drizzle/0010, 0013, 0014, 0017) as the statements of src/db/store.ts write and
 * read it: its columns, listed once (AUDIT_COLUMNS), and the SQL made from that list — what a deleting
 * statement returns for its audit rows, the CTE that writes them, and the columns an AuditRow is read as.
 */
import { type SQL, sql } from 'drizzle-orm';
import { AuditWriteError } from '../core/errors.ts';
import { ms, rawOnce, ts, uncacheable } from './fragments.ts';
import type { ObjectNames } from './names.ts';

/** Why a session ended, as recorded in the audit table. */
export type SessionEndReason =
  | 'logout'
  | 'replaced'
  | 'revoked'
  | 'admin_revoked'
  | 'rotated'
  | 'evicted'
  | 'idle_expired'
  | 'expired'
  | 'reauthentication_expired'
  | 'user_sessions_deleted'
  | 'group_deleted'
  | 'all_deleted';

/**
 * Who ended a session, as recorded in the audit table (drizzle/0013): its own holder (`user`: logout, a new
 * sign-in replacing it), another of the user's sessions (`session`, its id), an administrator (`admin`, the
 * app's id for them, or null when none was given), `cleanup` (expiry), `eviction` (beyond maxSessions: the
 * new session's id), `rotation` (the old token's end).
 */
export type SessionEndActor =
  | { kind: 'user'; id: null }
  | { kind: 'session'; id: string }
  | { kind: 'admin'; id: string | null }
  | { kind: 'cleanup'; id: null }
  | { kind: 'eviction'; id: string | null }
  | { kind: 'rotation'; id: null };

/** The reason, end time and actor of the audit rows a deleting statement writes (literal, or SQL over `d`). */
export interface AuditEnd {
  reason: SessionEndReason | SQL;
  endedAt: number | SQL;
  actor: SessionEndActor;
}

export interface AuditRow {
  session_id: string;
  user_id: string;
  group_id: string | null;
  reason: SessionEndReason;
  ended_at: number;
  created_at: number;
  last_accessed: number;
  user_agent: string | null;
  device: string | null;
  ip: string | null;
  label: string | null;
  actor_kind: SessionEndActor['kind'] | null;
  actor_id: string | null;
  impersonated_by: string | null;
  /** The session's location (drizzle/0017) as JSON text, or null. */
  location: string | null;
}

/** How audited statements write and report their rows. */
export interface AuditWriting {
  /** Most audit rows kept per user (0: no bound). */
  maxPerUser: number;
  /** Called when audit rows could not be written; the sessions ended anyway. */
  onFailure: (e: AuditWriteError) => void;
}

/** The columns the statement ending the sessions gives (the same for each of its rows). */
type GivenColumn = 'reason' | 'ended_at' | 'actor_kind' | 'actor_id';

/**
 * The audit table's columns, in AuditRow's order. `copy`: the session column it copies from the deleted
 * row (`token_hash` becomes its check, session_token_check of drizzle/0013); `given`: set by the statement;
 * `read`: how an AuditRow reads it (null: never read back).
 */
const AUDIT_COLUMNS: readonly { name: string; copy?: string; given?: GivenColumn; read?: string | null }[] = [
  { name: 'session_id', copy: 'id', read: 'session_id::text AS session_id' },
  { name: 'user_id', copy: 'user_id' },
  { name: 'group_id', copy: 'group_id' },
  { name: 'reason', given: 'reason' },
  { name: 'ended_at', given: 'ended_at', read: ms('ended_at') },
  { name: 'created_at', copy: 'created_at', read: ms('created_at') },
  { name: 'last_accessed', copy: 'last_accessed', read: ms('last_accessed') },
  { name: 'user_agent', copy: 'user_agent' },
  { name: 'device', copy: 'device' },
  { name: 'ip', copy: 'ip' },
  { name: 'label', copy: 'label' },
  { name: 'actor_kind', given: 'actor_kind' },
  { name: 'actor_id', given: 'actor_id' },
  { name: 'impersonated_by', copy: 'impersonated_by' },
  // As text, so every driver gives the same string (as the session listing reads it, src/db/fragments.ts).
  { name: 'location', copy: 'location', read: 'location::text AS location' },
  { name: 'token_check', copy: 'token_hash', read: null },
];

const COPIED = AUDIT_COLUMNS.flatMap((c) => (c.copy === undefined ? [] : [c.copy]));

/** What a deleting statement returns (as CTE `d`) for its audit rows: the session columns copied. */
export const AUDIT_SOURCE_TEXT = COPIED.join(', ');
export const auditSource = rawOnce(AUDIT_SOURCE_TEXT);
/** The same from an UPDATE's row `s`, less token_hash (a rotation audits the old one, which it replaced). */
export const auditSourceOfS = rawOnce(
  COPIED.filter((c) => c !== 'token_hash')
    .map((c) => `s.${c}`)
    .join(', '),
);

/** The columns an AuditRow is read as (from the audit table, unqualified). */
export const auditRowColumns = rawOnce(AUDIT_COLUMNS.flatMap((c) => (c.read === null ? [] : [c.read ?? c.name])).join(', '));

/**
 * json_build_object's arguments for the audit row of a session in CTE `d`: each column's name, then its
 * value — the session's own, or what `given` says (SQL text, or drizzle SQL with parameters).
 */
function auditRowArguments<T>(n: ObjectNames, given: Record<GivenColumn, T>): (string | T)[] {
  return AUDIT_COLUMNS.flatMap((c) => {
    if (c.given !== undefined) return [`'${c.name}'`, given[c.given]];
    return [`'${c.name}'`, c.copy === 'token_hash' ? `${n.tokenCheckFunction}(d.token_hash)` : `d.${c.copy}`];
  });
}

/**
 * CTE `a` of an audited statement, as text (the prepared statements): the audit rows of the sessions in CTE
 * `d` (columns auditSource), written by session_audit_write (drizzle/0010), which never fails the
 * statement: `(SELECT e FROM a)` is null, or the error that kept the rows from being written. A statement
 * must select it, or the rows are not written.
 */
export function auditCteText(n: ObjectNames, given: Record<GivenColumn, string>, maxPerUser: string): string {
  const row = auditRowArguments(n, given).join(', ');
  return `a AS (SELECT ${n.auditWriteFunction}((SELECT json_agg(json_build_object(${row})) FROM d), ${maxPerUser}) AS e)`;
}

/** CTE `a` as auditCteText, for a statement built with drizzle's `sql`. */
export function auditCte(n: ObjectNames, audit: AuditEnd, maxPerUser: number): SQL {
  const row = auditRowArguments<SQL>(n, {
    reason: typeof audit.reason === 'string' ? sql`${audit.reason}::text` : audit.reason,
    ended_at: typeof audit.endedAt === 'number' ? ts(audit.endedAt) : audit.endedAt,
    actor_kind: sql`${audit.actor.kind}::text`,
    actor_id: sql`${audit.actor.id}::text`,
  }).map((p) => (typeof p === 'string' ? sql.raw(p) : p));
  return sql`a AS (SELECT ${sql.raw(n.auditWriteFunction)}((SELECT json_agg(json_build_object(${sql.join(row, sql.raw(', '))})) FROM d), ${maxPerUser}::integer) AS e)`;
}

/** Reports audit rows an audited statement could not write (its sessions ended all the same). */
export function reportAuditFailure(
  audit: AuditWriting,
  operation: string,
  rows: readonly { audit_error?: string | null }[],
  sessions: number,
): void {
  const failed = rows.find((r) => typeof r.audit_error === 'string')?.audit_error;
  if (failed === undefined || failed === null) return;
  try {
    audit.onFailure(new AuditWriteError(operation, sessions, failed));
  } catch {
    // A throwing reporter must not turn an ended session into a failed call.
  }
}

/** A user's recorded session ends, newest first (at most `limit`, before `before` when given). */
export function listAuditStatement(n: ObjectNames, userId: string, limit: number, before: number | null): SQL {
  const until = before === null ? sql`` : sql` AND ended_at < ${ts(before)}`;
  return sql`SELECT ${auditRowColumns()}, ${uncacheable()}
          FROM ${sql.raw(n.audit)} WHERE user_id = ${userId}${until} ORDER BY ended_at DESC, id DESC LIMIT ${limit}::integer`;
}

/** The newest audit row of a session (rotations before its final end), by its id or by a token it had. */
export function auditOfStatement(n: ObjectNames, of: { sessionId: string } | { tokenHash: string }): SQL {
  const a = sql.raw(n.audit);
  const session =
    'sessionId' in of
      ? sql`${of.sessionId}::uuid`
      : sql`(SELECT t.session_id FROM ${a} AS t WHERE t.token_check = ${sql.raw(n.tokenCheckFunction)}(decode(${of.tokenHash}, 'hex')) LIMIT 1)`;
  return sql`SELECT ${auditRowColumns()}, ${uncacheable()}
          FROM ${a} WHERE session_id = ${session} ORDER BY (reason <> 'rotated') DESC, ended_at DESC, id DESC LIMIT 1`;
}

/** Deletes audit rows that ended before `cutoff`, at most `limit`; selects how many (`n`). */
export function pruneAuditStatement(n: ObjectNames, cutoff: number, limit: number): SQL {
  const a = sql.raw(n.audit);
  return sql`WITH d AS (DELETE FROM ${a} WHERE id IN (SELECT id FROM ${a} WHERE ended_at < ${ts(cutoff)} LIMIT ${limit}::integer) RETURNING 1)
          SELECT count(*)::integer AS n, ${uncacheable()} FROM d`;
}
