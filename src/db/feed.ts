import { sql } from 'drizzle-orm';
import { classifyDatabaseError, findErrorCode } from '../core/errors.ts';
import { ChangeSet, knownVersion } from '../core/versions.ts';
import { rowsOf, type SqlExecutor } from './executor.ts';
import type { ObjectNames } from './names.ts';

/**
 * Reading the durable change record (drizzle/0002-0003, 0011). A record names one changed or deleted
 * session (session_id), the sessions one statement deleted (session_ids), or, with both null, "everything
 * may have changed". A cursor is a PostgreSQL snapshot (`xmin:xmax:xip,...`, from
 * pg_current_snapshot()). "What changed after cursor C" is every record whose
 * transaction is visible now but was not visible in C — exact, whatever order transactions took their
 * ids and committed in, so no change is ever skipped (a plain "highest sequence seen" would skip a
 * transaction that took a smaller number but committed later). A cursor is meaningful to every reader
 * of the same database: across worker restarts, across replicas, and for an isolate that reads the
 * record itself while the worker is down.
 */
export interface ChangePage {
  /** Pass it as `after` next time. */
  cursor: string;
  /** Sessions changed or deleted since `after` (deduplicated). */
  ids: string[];
  /**
   * Drop every cached session: the cursor was missing, unknown, too old (its records were pruned), or a
   * bulk change (clearAllCaches, a delete of > 10000 sessions, TRUNCATE) happened, or more than `limit`
   * sessions changed.
   */
  reset: boolean;
  /**
   * Beside `ids` (same order): the version each session's changes left it at (drizzle/0018), null when
   * unknown (a delete, a change that did not move the version, an earlier record). Undefined when no
   * version is known. See FeedResponse.versions (src/protocol.ts).
   */
  versions?: (number | null)[];
}

const SNAPSHOT_RE = /^(\d{1,20}):(\d{1,20}):((?:\d{1,20})(?:,\d{1,20})*)?$/;
export const MAX_CURSOR_LENGTH = 16384;

/** True when `cursor` has the shape of a snapshot (anything else is answered with a reset). */
export function isCursor(cursor: unknown): cursor is string {
  return typeof cursor === 'string' && cursor.length <= MAX_CURSOR_LENGTH && SNAPSHOT_RE.test(cursor);
}

/** Default most ids returned by one read; beyond it the reader is told to reset instead. */
export const DEFAULT_PAGE_LIMIT = 10000;

/** One statement: the current snapshot and the changes after `after` (or a reset). */
export function readChanges(
  db: SqlExecutor,
  names: ObjectNames,
  after: string | null | undefined,
  limit = DEFAULT_PAGE_LIMIT,
): Promise<ChangePage> {
  return readPage(db, names, after, limit, true);
}

/** readChanges, with the records' versions (drizzle/0018) or, on a store without them, without. */
async function readPage(
  db: SqlExecutor,
  names: ObjectNames,
  after: string | null | undefined,
  limit: number,
  versioned: boolean,
): Promise<ChangePage> {
  const version = versioned ? sql`ch.version` : sql`NULL::integer`;
  const changes = sql.raw(`"${names.schemaName}"."${names.tablePrefix}session_changes"`);
  const horizon = sql.raw(`"${names.schemaName}"."${names.tablePrefix}session_changes_horizon"`);
  try {
    if (!isCursor(after)) {
      const rows = rowsOf<{ snapshot: string }>(await db.execute(sql`SELECT pg_current_snapshot()::text AS snapshot`));
      return { cursor: String(rows[0]?.snapshot), ids: [], reset: true };
    }
    // Each record's version beside its ids (drizzle/0018: null for deletes and unversioned changes).
    const rows = rowsOf<{ snapshot: string; too_old: boolean; ids: unknown; versions: unknown }>(
      await db.execute(sql`
        WITH c AS (SELECT ${after}::pg_snapshot AS p)
        SELECT pg_current_snapshot()::text AS snapshot,
          (COALESCE((SELECT pruned_below FROM ${horizon} WHERE id = 1), '0'::xid8) > pg_snapshot_xmin(c.p)
            OR pg_snapshot_xmax(c.p) > pg_snapshot_xmax(pg_current_snapshot())) AS too_old,
          a.ids, a.versions
        FROM c CROSS JOIN LATERAL (SELECT COALESCE(json_agg(x.id), '[]'::json) AS ids, COALESCE(json_agg(x.version), '[]'::json) AS versions FROM (
             SELECT u.id, ${version} AS version FROM ${changes} AS ch CROSS JOIN LATERAL unnest(COALESCE(ch.session_ids, ARRAY[ch.session_id])) AS u(id)
             WHERE ch.xid >= pg_snapshot_xmin(c.p) AND NOT pg_visible_in_snapshot(ch.xid, c.p)
             ORDER BY ch.xid LIMIT ${limit + 1}::integer) AS x) AS a`),
    );
    const r = rows[0];
    if (r === undefined) throw new Error('change feed query returned no row');
    const raw = parsed(r.ids) as (string | null)[];
    if (r.too_old === true || raw.length > limit || raw.includes(null)) return { cursor: r.snapshot, ids: [], reset: true };
    const versions = parsed(r.versions) as unknown[];
    const set = new ChangeSet();
    for (let i = 0; i < raw.length; i++) set.add(raw[i] as string, knownVersion(versions[i]));
    const known = set.versions();
    return known === undefined
      ? { cursor: r.snapshot, ids: set.ids(), reset: false }
      : { cursor: r.snapshot, ids: set.ids(), reset: false, versions: known };
  } catch (e) {
    // A cursor of the right shape that PostgreSQL still refuses (xmin 0, xmin > xmax, out of range...):
    // not an error of ours, just an unknown cursor, answered like any other with a reset.
    const code = findErrorCode(e);
    if (code === '22P02' || code === '22003') return readPage(db, names, null, limit, versioned);
    // A store not migrated to drizzle/0018 yet (this release deployed before its migration ran): read it as
    // before, without versions, so every id invalidates. One failed statement more per read until then.
    if (code === '42703' && versioned) return readPage(db, names, after, limit, false);
    throw classifyDatabaseError('readChanges', e, names);
  }
}

/** A json column as the driver returned it: parsed already (node-postgres) or its text. */
function parsed(v: unknown): unknown {
  return typeof v === 'string' ? JSON.parse(v) : v;
}

/** Records "everything may have changed": every cache that follows the feed is cleared. One statement. */
export async function recordReset(db: SqlExecutor, names: ObjectNames): Promise<void> {
  const changes = sql.raw(`"${names.schemaName}"."${names.tablePrefix}session_changes"`);
  try {
    await db.execute(sql`INSERT INTO ${changes} (session_id) VALUES (NULL)`);
  } catch (e) {
    throw classifyDatabaseError('clearAllCaches', e, names);
  }
}

/**
 * Prunes change records older than `retentionMs` (by the database's clock), keeping every record a
 * running transaction could still add to. Raises the horizon first, so a cursor that could miss a pruned
 * record is answered with a reset. Returns rows deleted. Several short statements of at most `batch` rows.
 */
export async function pruneChanges(db: SqlExecutor, names: ObjectNames, retentionMs: number, batch = 10000): Promise<number> {
  const changes = sql.raw(`"${names.schemaName}"."${names.tablePrefix}session_changes"`);
  const horizon = sql.raw(`"${names.schemaName}"."${names.tablePrefix}session_changes_horizon"`);
  try {
    // The cut: records older than the retention, never one a running transaction could still add to.
    const h = rowsOf<{ h: string | null }>(
      await db.execute(sql`
        SELECT LEAST(
          COALESCE((SELECT xid FROM ${changes} WHERE at >= now() - make_interval(secs => ${retentionMs / 1000}::float8) ORDER BY xid LIMIT 1),
                   pg_snapshot_xmin(pg_current_snapshot())),
          pg_snapshot_xmin(pg_current_snapshot()))::text AS h`),
    )[0]?.h;
    if (h === undefined || h === null) return 0;
    let total = 0;
    for (;;) {
      // Each batch deletes and raises the horizon past what it deleted in one statement (atomically for
      // readers): only a cursor that could have needed a deleted record (its xmin <= that record's xid)
      // is answered with a reset. Nothing deleted, nothing raised: idle cursors stay valid.
      const n = Number(
        rowsOf<{ n: number }>(
          await db.execute(sql`
            WITH d AS (
              DELETE FROM ${changes} WHERE ctid IN (SELECT ctid FROM ${changes} WHERE xid < ${h}::xid8 LIMIT ${batch}::integer)
              RETURNING xid
            ), top AS (
              SELECT ((max(xid)::text)::numeric + 1)::text::xid8 AS below FROM d HAVING count(*) > 0
            ), raised AS (
              INSERT INTO ${horizon} (id, pruned_below) SELECT 1, below FROM top
              ON CONFLICT (id) DO UPDATE SET pruned_below = GREATEST(${horizon}.pruned_below, EXCLUDED.pruned_below)
              RETURNING 1
            )
            SELECT (SELECT count(*)::integer FROM d) AS n, (SELECT count(*) FROM raised) AS r, clock_timestamp() AS uncacheable`),
        )[0]?.n ?? 0,
      );
      total += n;
      if (n < batch) return total;
    }
  } catch (e) {
    throw classifyDatabaseError('pruneChanges', e, names);
  }
}

/** The LISTEN channel the capture triggers notify: `<schema>.<prefix>sessions`, cut to 63 bytes. */
export function channelName(names: Pick<ObjectNames, 'schemaName' | 'tablePrefix'>): string {
  return `${names.schemaName}.${names.tablePrefix}sessions`.slice(0, 63);
}
