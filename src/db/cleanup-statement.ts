/**
 * The one statement of a cleanup step (`Store.cleanupDue`, src/db/store.ts): the sessions whose cleanup
 * deadline has passed (drizzle/0015) deleted when expired (with their audit rows), their expired attributes
 * removed otherwise, and every survivor given its next deadline.
 */
import { type SQL, sql } from 'drizzle-orm';
import { auditCte, auditSource } from './audit.ts';
import { ts } from './fragments.ts';
import type { ObjectNames } from './names.ts';

/** What `Store.cleanupDue` is asked (see there). */
export interface CleanupDue {
  source: 'due' | 'unset';
  now: number;
  idleCutoff: number | null;
  /** Sessions last authenticated at or before it are past their re-authentication period (null: none). */
  reauthCutoff?: number | null;
  /** For `source: 'unset'`: sessions created at or before it. */
  unsetCutoff?: number;
  limit: number;
  /**
   * The index key (ms) at which the previous statement of the same run stopped (its summary row's `last`):
   * this statement's scan starts there, past that statement's dead index entries (see cleanupDueStatement).
   */
  after?: number;
  /** Record each deleted session in the audit table (expired or idle_expired, ending when it expired). */
  audit?: { idleMs: number | null; reauthMs?: number | null };
  /** Return the ids changed (else only how many). */
  ids: boolean;
}

/** What one cleanup step did (`Store.cleanupDue`): `last` is the last index key picked, null when none was. */
export interface CleanupDueResult {
  ids: string[];
  deleted: number;
  attributes: number;
  picked: number;
  active: number;
  last: number | null;
}

/** A row of the statement: an id changed (the rest null), or the one summary row (id null). */
export interface CleanupDueRow {
  id: string | null;
  picked: number | null;
  deleted: number | null;
  attributes: number | null;
  active: number | null;
  audit_error: string | null;
  /** The summary row's: the greatest index key picked (ms; null when none was), the next statement's `after`. */
  last: number | null;
}

/**
 * Which of the picked rows `s` are expired, which have expired attributes, and the next deadline of the
 * others: each end measured as the cutoffs measure it (the idle end includes the grace).
 */
function conditions(p: CleanupDue): { expired: SQL; attrExpired: SQL; deadline: SQL } {
  const now = ts(p.now);
  const reauthCutoff = p.reauthCutoff ?? null;
  const idle = p.idleCutoff === null ? sql`` : sql` OR s.last_accessed <= ${ts(p.idleCutoff)}`;
  const reauth = reauthCutoff === null ? sql`` : sql` OR COALESCE(s.authenticated_at, s.created_at) <= ${ts(reauthCutoff)}`;
  // A cheap filter, then exactly the complement of what the UPDATE keeps.
  const attrExpired = sql`COALESCE(jsonb_path_exists(s.attributes, '$.*.exp ? (@ <= $now)', jsonb_build_object('now', ${p.now}::float8))
        AND (SELECT bool_or(jsonb_typeof(a.value -> 'exp') = 'number' AND (a.value ->> 'exp')::float8 <= ${p.now}::float8) FROM jsonb_each(s.attributes) AS a), false)`;
  const idleEnd = p.idleCutoff === null ? sql`` : sql`, s.last_accessed + ${`${p.now - p.idleCutoff} milliseconds`}::interval`;
  const reauthEnd =
    reauthCutoff === null ? sql`` : sql`, COALESCE(s.authenticated_at, s.created_at) + ${`${p.now - reauthCutoff} milliseconds`}::interval`;
  const deadline = sql`LEAST(s.expires_at${idleEnd}${reauthEnd}, (SELECT to_timestamp(min((a.value ->> 'exp')::float8) / 1000) FROM jsonb_each(s.attributes) AS a
        WHERE jsonb_typeof(a.value -> 'exp') = 'number' AND (a.value ->> 'exp')::float8 > ${p.now}::float8))`;
  return { expired: sql`(s.expires_at <= ${now}${idle}${reauth})`, attrExpired, deadline };
}

/** CTE `d` (and, when audited, `a`): the picked sessions that are expired, deleted. */
function deleting(t: SQL, n: ObjectNames, p: CleanupDue, picked: SQL, expired: SQL, maxPerUser: number): SQL {
  // Without audit rows the delete returns nothing: RETURNING fetches each deleted row once more (a block
  // read or hit per deleted session, an eighth of the statement's); what was deleted is read from `c`.
  if (p.audit === undefined) return sql`d AS (DELETE FROM ${t} AS s WHERE ${picked} AND ${expired}),`;
  const now = ts(p.now);
  const expiredD = sql`d.expires_at <= ${now}`;
  const idleEndD = p.audit.idleMs === null ? sql`d.expires_at` : sql`d.last_accessed + ${`${p.audit.idleMs} milliseconds`}::interval`;
  const reauthMs = p.audit.reauthMs ?? null;
  // Past its re-authentication period (drizzle/0012): ended at authenticated_at + the period, when that
  // came before it went idle.
  const reauthEndD = reauthMs === null ? sql`d.expires_at` : sql`d.authenticated_at + ${`${reauthMs} milliseconds`}::interval`;
  // Data-modifying CTEs must be at the top level: the delete and its audit rows come before `m`.
  return sql`d AS (DELETE FROM ${t} AS s WHERE ${picked} AND ${expired}
            RETURNING ${auditSource()}, expires_at, COALESCE(authenticated_at, created_at) AS authenticated_at),
          ${auditCte(
            n,
            {
              actor: { kind: 'cleanup', id: null },
              reason: sql`CASE WHEN ${expiredD} THEN 'expired' WHEN ${reauthEndD} < LEAST(${idleEndD}, d.expires_at) THEN 'reauthentication_expired' ELSE 'idle_expired' END`,
              endedAt: sql`CASE WHEN ${expiredD} THEN d.expires_at ELSE LEAST(${idleEndD}, ${reauthEndD}, d.expires_at) END`,
            },
            maxPerUser,
          )},`;
}

/**
 * The cleanup statement (rows: CleanupDueRow), over the sessions table `t` over the sessions whose cleanup deadline has passed (drizzle/0015), found through
 * an index, oldest deadline first, at most `limit` of them; locked rows are skipped, not waited for.
 * `source: 'due'` reads sessions_cleanup_idx (deadline, or absolute expiry while none is set, at or before
 * `now`); `source: 'unset'` reads sessions_unset_idx (no deadline yet, created at or before
 * `unsetCutoff`: old enough to be idle or past its re-authentication period, and not expired absolutely:
 * those are the 'due' source's, and their entries, dead once it deleted them, are passed in the index,
 * drizzle/0020). Of the rows read it deletes
 * the expired ones (absolutely, idle when `idleCutoff` is set, past `reauthCutoff` when set), removes
 * expired attributes from the others, and gives every survivor its next deadline: the earliest of its
 * absolute expiry, its idle end, its re-authentication end and its attributes' expiries. Touches only
 * move those later, so no session is found late; a session touched since its deadline was set is read
 * once more, when that deadline passes, and given a later one. Neither index holds a column that touches
 * or attribute updates change, so those stay HOT updates; cleanup reads what is due, not the table.
 */
export function cleanupDueStatement(t: SQL, n: ObjectNames, p: CleanupDue, maxPerUser: number): SQL {
  const now = ts(p.now);
  // The key of the source's index (drizzle/0015, 0020), in the index's own expression so that the bounds are
  // index conditions; for 'unset', `expires_at > now` on the index's second key as well.
  const key = p.source === 'due' ? sql`LEAST(cleanup_at, expires_at)` : sql`created_at`;
  // Keyset continuation within one run: the previous statement deleted its rows or moved their deadline past
  // `now` (or, for 'unset', set one, which takes them out of sessions_unset_idx), but their index entries
  // stay until VACUUM, and a scan from the start visits each one's heap tuple again (a block read per dead
  // entry; the scan then marks the entry dead, and later scans skip it). So each following statement
  // starts at the last key the previous one picked (at it, not past it: rows with the same key may remain).
  // The run then reads what it deletes and no more; the one visit per dead entry goes to the next run's
  // first statement, unless a VACUUM (autovacuum, for one) has removed the entry by then: moved, not saved,
  // when no vacuum comes between two runs (test/db/cleanup-blocks.test.ts; bench/README.md, Scale).
  // What this skips below that key: rows a concurrent transaction held locked (SKIP LOCKED) and rows whose
  // deadline a concurrent write moved back below it (an attribute given an expiry, drizzle/0015's
  // session_update). Both wait for the next run, which starts with no bound: nothing due waits more than one
  // run. Survivors get a deadline after `now`, touches only move deadlines later, and new sessions have no
  // deadline (their absolute expiry, in the future, stands for it; in 'unset', a creation time after the
  // cutoff): none of those comes due during the run anyway.
  //
  // Both bounds are given as one-row subqueries: still index conditions (compared when the scan starts), but
  // values the planner cannot see. Given a constant near the index's low end, the planner reads the index's
  // actual lowest live key to estimate the condition (PostgreSQL's get_actual_variable_range), and that walk,
  // which marks nothing dead on its way, visits the heap tuple behind every dead entry from the index's start:
  // each statement of a run again over all the ones before it.
  //
  // A run's first statement has a lower bound too, one that holds for every key: the planner estimates two
  // opaque bounds as a narrow range (0.5 % of the table) but one as a third of it, and with the limit's
  // tenth (below) the first statement's estimated cost grew with the table past PostgreSQL's JIT threshold
  // (jit_above_cost: 107,324 at 1 M sessions): it compiled its expressions before reading anything, 45-100 ms
  // at 1 M (auto_explain during npm run bench -- --only=scale), where the statement itself took a few ms; at
  // 10 M a run of three statements with nothing to delete took 790 ms (the same section, 19 ms since).
  const from = sql`${key} >= (SELECT ${p.after === undefined ? sql`'-infinity'::timestamptz` : ts(p.after)}) AND `;
  const to = sql`${key} <= (SELECT ${p.source === 'due' ? now : ts(p.unsetCutoff ?? p.now)})`;
  const pickDue =
    p.source === 'due'
      ? sql`${from}${to} ORDER BY ${key}`
      : sql`cleanup_at IS NULL AND ${from}${to} AND expires_at > (SELECT ${now}) ORDER BY ${key}`;
  const { expired, attrExpired, deadline } = conditions(p);
  // Each picked row is read by the one CTE that acts on it: c tells which (from the version it locked),
  // so the two updates never read the rows the delete removes, nor each other's (a heap block read per
  // row and CTE saved). The CTEs still test their condition themselves.
  const picked = (which: SQL) => sql`s.ctid = ANY(ARRAY(SELECT tid FROM c WHERE ${which}))`;
  // What was deleted: with audit rows, what the delete returned; without, the rows `c` locked and found
  // expired. The delete removes each of those (locked, so unchanged since: the same row, the same
  // condition), but for one the pick saw changed by a transaction that committed after this statement's
  // snapshot (its lock then holds the newer version, which the delete cannot see): that one stays for the
  // next statement and is counted twice. Only the count and the cache invalidation read these; the feed's
  // rows come from the delete itself (the capture trigger, drizzle/0003).
  const deletedIds = p.audit === undefined ? sql`SELECT id FROM c WHERE e` : sql`SELECT id FROM d`;
  const deletedCount = p.audit === undefined ? sql`count(*) FILTER (WHERE c.e)` : sql`(SELECT count(*) FROM d)`;
  // The ids come back only for a caller with a cache to invalidate (the worker's cleaner has none).
  const idRows = p.ids
    ? sql`SELECT id::text AS id, NULL::float8 AS picked, NULL::float8 AS deleted, NULL::float8 AS attributes, NULL::float8 AS active, NULL::text AS audit_error,
            NULL::float8 AS last
          FROM (${deletedIds} UNION ALL SELECT id FROM x) AS m UNION ALL `
    : sql``;
  // The limit too is a one-row subquery, so that the planner takes it for a tenth of the rows it expects and
  // walks the index in order, stopping at the limit. Given the number, and the two opaque bounds (which it
  // estimates as a narrow range: 0.5 % of the table), it expected fewer rows than the limit and chose a bitmap
  // scan and a sort: every due session read, and its conditions computed, in every statement (auto_explain
  // during the bench's cleanup section: statements of 0.1-1 s; test/db/cleanup-statement-size.test.ts).
  return sql`WITH c AS MATERIALIZED (
            SELECT s.ctid AS tid, s.id, ${key} AS k, ${expired} AS e, ${attrExpired} AS ax FROM ${t} AS s WHERE ${pickDue} LIMIT (SELECT ${p.limit}::integer) FOR UPDATE SKIP LOCKED
          ), ${deleting(t, n, p, picked(sql`e`), expired, maxPerUser)}
          x AS (UPDATE ${t} AS s SET
              attributes = (SELECT COALESCE(jsonb_object_agg(a.key, a.value), '{}'::jsonb) FROM jsonb_each(s.attributes) AS a
                            WHERE jsonb_typeof(a.value -> 'exp') IS DISTINCT FROM 'number' OR (a.value ->> 'exp')::float8 > ${p.now}::float8),
              version = s.version + 1,
              updated_at = ${now},
              cleanup_at = ${deadline}
            WHERE ${picked(sql`NOT e AND ax`)} AND NOT ${expired} AND ${attrExpired}
            RETURNING s.id),
          -- The others get their next deadline (run to completion though nothing reads it).
          r AS (UPDATE ${t} AS s SET cleanup_at = ${deadline} WHERE ${picked(sql`NOT e AND NOT ax`)} AND NOT ${expired} AND NOT ${attrExpired})
          ${idRows}SELECT NULL::text AS id, count(*)::float8 AS picked, ${deletedCount}::float8 AS deleted,
            (SELECT count(*) FROM x)::float8 AS attributes,
            (SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND datname = current_database())::float8 AS active, ${p.audit !== undefined ? sql`(SELECT e FROM a)` : sql`NULL::text`} AS audit_error,
            (extract(epoch from max(c.k)) * 1000)::float8 AS last
            FROM c`;
}

/** The statement's rows read: the ids changed, and the summary row's counts and last key. */
export function readCleanupRows(rows: readonly CleanupDueRow[]): { result: CleanupDueResult; summary: CleanupDueRow | undefined } {
  const ids: string[] = [];
  let summary: CleanupDueRow | undefined;
  for (const r of rows) {
    if (r.id === null) summary = r;
    else ids.push(r.id);
  }
  const result = {
    ids,
    deleted: Number(summary?.deleted ?? 0),
    attributes: Number(summary?.attributes ?? 0),
    picked: Number(summary?.picked ?? 0),
    active: Number(summary?.active ?? 0),
    last: summary?.last == null ? null : Number(summary.last),
  };
  return { result, summary };
}
