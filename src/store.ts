import { type SQL, sql } from 'drizzle-orm';
import { parseStoredAttributes } from './attributes.ts';
import type { SessionRecord } from './cache.ts';
import { rowsOf, type SqlExecutor } from './db.ts';
import { classifyDatabaseError } from './errors.ts';
import type { ObjectNames } from './names.ts';

/**
 * All SQL the SessionManager runs. Each public operation is exactly one statement (one round trip, and
 * valid over Neon's HTTP driver). Times are passed in from the manager's clock, never taken from now().
 * Results are read as plain JSON-friendly types (float8 ms, text ids) so every driver agrees.
 */

export interface SessionRow {
  id: string;
  user_id: string;
  group_id: string | null;
  attributes: unknown;
  version: number;
  created_at: number;
  updated_at: number;
  last_accessed: number;
  expires_at: number;
}

const ms = (col: string) => `(extract(epoch from ${col}) * 1000)::float8 AS ${col}`;
/** The columns of a session row, as `rowToRecord` reads them. */
export const COLUMNS = sql.raw(
  [
    'id::text AS id',
    'user_id',
    'group_id',
    'attributes',
    'version',
    ms('created_at'),
    ms('updated_at'),
    ms('last_accessed'),
    ms('expires_at'),
  ].join(', '),
);
/** The same without attributes (listings). */
const META_COLUMNS = sql.raw(
  ['id::text AS id', 'user_id', 'group_id', 'version', ms('created_at'), ms('updated_at'), ms('last_accessed'), ms('expires_at')].join(
    ', ',
  ),
);

/**
 * Added to every read: a volatile function makes the query uncacheable by Cloudflare Hyperdrive (which
 * caches read-only queries for ~60 s by default and would otherwise serve a revoked session).
 */
const UNCACHEABLE = sql.raw('clock_timestamp() IS NOT NULL AS uncacheable');

export function ts(msSinceEpoch: number): SQL {
  return sql`${new Date(msSinceEpoch).toISOString()}::timestamptz`;
}

export function rowToRecord(r: SessionRow): SessionRecord {
  return {
    id: r.id,
    userId: r.user_id,
    groupId: r.group_id,
    version: Number(r.version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastAccessed: Number(r.last_accessed),
    expiresAt: Number(r.expires_at),
    attributes: parseStoredAttributes(r.attributes),
  };
}

export class Store {
  readonly #db: SqlExecutor;
  readonly names: ObjectNames;
  /** The database, for the change-feed helpers. */
  get db(): SqlExecutor {
    return this.#db;
  }
  readonly #t: SQL;

  constructor(db: SqlExecutor, names: ObjectNames) {
    this.#db = db;
    this.names = names;
    this.#t = sql.raw(names.sessions);
  }

  async run<T>(operation: string, query: SQL): Promise<T[]> {
    let result: unknown;
    try {
      result = await this.#db.execute(query);
    } catch (e) {
      throw classifyDatabaseError(operation, e, this.names);
    }
    return rowsOf<T>(result);
  }

  async selectByTokenHash(hash: string): Promise<SessionRow | undefined> {
    const rows = await this.run<SessionRow>('getSession', sql`SELECT ${COLUMNS}, ${UNCACHEABLE} FROM ${this.#t} WHERE token_hash = decode(${hash}, 'hex')`);
    return rows[0];
  }

  async selectById(id: string): Promise<SessionRow | undefined> {
    const rows = await this.run<SessionRow>('getSessionById', sql`SELECT ${COLUMNS}, ${UNCACHEABLE} FROM ${this.#t} WHERE id = ${id}::uuid`);
    return rows[0];
  }

  /** Inserts and evicts beyond maxSessions atomically (see drizzle/0001). Returns the evicted ids. */
  async create(p: {
    id: string;
    hash: string;
    userId: string;
    groupId: string | null;
    attributesJson: string;
    now: number;
    expiresAt: number;
    maxSessions: number;
  }): Promise<string[]> {
    const rows = await this.run<{ id: string }>(
      'createSession',
      sql`SELECT evicted_id::text AS id FROM ${sql.raw(this.names.createFunction)}(${p.id}::uuid, decode(${p.hash}, 'hex'), ${p.userId}::text, ${p.groupId}::text, ${p.attributesJson}::jsonb, ${ts(p.now)}, ${ts(p.expiresAt)}, ${p.maxSessions}::integer)`,
    );
    return rows.map((r) => r.id);
  }

  /**
   * Merges changed attributes (bumping each one's version) and removes deleted ones, in one statement.
   * Other attributes are untouched, so concurrent updates of different keys both survive. With
   * `expectVersion` / `expectAttributeVersions` it is a compare-and-set: nothing is written on mismatch.
   * The second branch reports the current row when nothing was updated (missing vs. conflict).
   */
  async update(p: {
    id: string;
    changesJson: string;
    deletedJson: string;
    now: number;
    expectVersion: number | null;
    expectAttributeVersions: Record<string, number> | null;
  }): Promise<{ updated: boolean; row: SessionRow } | undefined> {
    const versionCheck = p.expectVersion === null ? sql`` : sql` AND s.version = ${p.expectVersion}::integer`;
    // One plain condition per key, on the target row only. Not a NOT EXISTS over jsonb_each: the planner
    // turns that into an anti-join, which READ COMMITTED's recheck of a concurrently updated row does not
    // re-evaluate, so two compare-and-sets of one attribute could both succeed (a lost update).
    const attrCheck =
      p.expectAttributeVersions === null
        ? sql``
        : sql.join(
            Object.entries(p.expectAttributeVersions).map(
              ([k, v]) => sql` AND COALESCE((s.attributes -> ${k}::text ->> 'ver')::integer, 0) = ${v}::integer`,
            ),
          );
    const rows = await this.run<SessionRow & { updated: boolean }>(
      'updateSession',
      sql`WITH upd AS (
        UPDATE ${this.#t} AS s SET
          attributes = (s.attributes - ARRAY(SELECT jsonb_array_elements_text(${p.deletedJson}::jsonb)))
            || COALESCE((SELECT jsonb_object_agg(c.key, c.value || jsonb_build_object('ver', COALESCE((s.attributes -> c.key ->> 'ver')::integer, 0) + 1))
                         FROM jsonb_each(${p.changesJson}::jsonb) AS c), '{}'::jsonb),
          version = s.version + 1,
          updated_at = ${ts(p.now)}
        WHERE s.id = ${p.id}::uuid AND s.expires_at > ${ts(p.now)}${versionCheck}${attrCheck}
        RETURNING ${COLUMNS}
      )
      SELECT true AS updated, * FROM upd
      UNION ALL
      SELECT false AS updated, ${COLUMNS} FROM ${this.#t} WHERE id = ${p.id}::uuid AND NOT EXISTS (SELECT 1 FROM upd)`,
    );
    const r = rows[0];
    return r === undefined ? undefined : { updated: r.updated === true, row: r };
  }

  /** New token hash for the same row, in one statement. `by` selects the row by old token hash or by id. */
  async rotate(p: {
    by: { hash: string } | { id: string };
    newHash: string;
    now: number;
    idleCutoff: number | null;
  }): Promise<SessionRow | undefined> {
    const where = 'hash' in p.by ? sql`token_hash = decode(${p.by.hash}, 'hex')` : sql`id = ${p.by.id}::uuid`;
    const idle = p.idleCutoff === null ? sql`` : sql` AND last_accessed > ${ts(p.idleCutoff)}`;
    const rows = await this.run<SessionRow>(
      'rotate',
      sql`UPDATE ${this.#t} SET token_hash = decode(${p.newHash}, 'hex'), version = version + 1, updated_at = ${ts(p.now)}
          WHERE ${where} AND expires_at > ${ts(p.now)}${idle} RETURNING ${COLUMNS}`,
    );
    return rows[0];
  }

  async deleteWhere(operation: string, where: SQL): Promise<string[]> {
    const rows = await this.run<{ id: string }>(operation, sql`DELETE FROM ${this.#t} WHERE ${where} RETURNING id::text AS id`);
    return rows.map((r) => r.id);
  }

  async deleteAll(): Promise<number> {
    const rows = await this.run<{ n: number }>(
      'deleteAllSessions',
      sql`WITH d AS (DELETE FROM ${this.#t} RETURNING 1) SELECT count(*)::integer AS n FROM d`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  async deleteAttributeForUser(userId: string, key: string, now: number): Promise<string[]> {
    const rows = await this.run<{ id: string }>(
      'deleteAttributeFromAllUserSessions',
      sql`UPDATE ${this.#t} SET attributes = attributes - ${key}::text, version = version + 1, updated_at = ${ts(now)}
          WHERE user_id = ${userId} AND attributes ? ${key}::text RETURNING id::text AS id`,
    );
    return rows.map((r) => r.id);
  }

  async listByUser(userId: string, now: number): Promise<SessionRow[]> {
    return this.run<SessionRow>(
      'listUserSessions',
      sql`SELECT ${META_COLUMNS}, ${UNCACHEABLE} FROM ${this.#t} WHERE user_id = ${userId} AND expires_at > ${ts(now)} ORDER BY last_accessed DESC, created_at DESC`,
    );
  }

  /** One batch of touches; GREATEST (and the filter) so last_accessed never moves backwards. */
  async flushTouches(batch: [string, number][]): Promise<number> {
    const json = JSON.stringify(batch.map(([id, at]) => ({ id, ts: new Date(at).toISOString() })));
    const rows = await this.run<{ n: number }>(
      'flushTouches',
      sql`WITH u AS (
        UPDATE ${this.#t} AS s SET last_accessed = GREATEST(s.last_accessed, v.ts)
        FROM jsonb_to_recordset(${json}::jsonb) AS v(id uuid, ts timestamptz)
        WHERE s.id = v.id AND s.last_accessed < v.ts
        RETURNING 1
      ) SELECT count(*)::integer AS n FROM u`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * One batch of expired sessions (absolute or idle). Locked rows are skipped, not waited for. The batch
   * is picked (and locked) by ctid and deleted by a TID scan: with `id IN (subquery)` the planner chose a
   * hash semi-join over a sequential scan of the whole table for every batch, so a cleanup of N rows read
   * the table N / batchSize times (see bench/, section cleanup).
   */
  async deleteExpiredBatch(now: number, idleCutoff: number | null, limit: number): Promise<string[]> {
    const idle = idleCutoff === null ? sql`` : sql` OR last_accessed <= ${ts(idleCutoff)}`;
    return this.deleteWhere(
      'deleteExpired',
      sql`ctid = ANY(ARRAY(SELECT ctid FROM ${this.#t} WHERE expires_at <= ${ts(now)}${idle} LIMIT ${limit}::integer FOR UPDATE SKIP LOCKED))`,
    );
  }

  /** One batch of sessions with expired attributes: removes those attributes. */
  async deleteExpiredAttributesBatch(now: number, limit: number): Promise<string[]> {
    const rows = await this.run<{ id: string }>(
      'deleteExpired',
      sql`UPDATE ${this.#t} AS s SET
            attributes = (SELECT COALESCE(jsonb_object_agg(a.key, a.value), '{}'::jsonb) FROM jsonb_each(s.attributes) AS a
                          WHERE jsonb_typeof(a.value -> 'exp') IS DISTINCT FROM 'number' OR (a.value ->> 'exp')::float8 > ${now}::float8),
            version = s.version + 1,
            updated_at = ${ts(now)}
          WHERE s.id IN (SELECT id FROM ${this.#t}
                         WHERE jsonb_path_exists(attributes, '$.*.exp ? (@ <= $now)', jsonb_build_object('now', ${now}::float8))
                         LIMIT ${limit}::integer FOR UPDATE SKIP LOCKED)
          RETURNING s.id::text AS id`,
    );
    return rows.map((r) => r.id);
  }
}
