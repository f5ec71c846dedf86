import { type SQL, sql } from 'drizzle-orm';
import type { StoredDevice } from '../core/device.ts';
import { classifyDatabaseError, findErrorCode } from '../core/errors.ts';
import {
  type AuditEnd,
  type AuditRow,
  type AuditWriting,
  auditCte,
  auditOfStatement,
  auditSource,
  auditSourceOfS,
  listAuditStatement,
  pruneAuditStatement,
  reportAuditFailure,
  type SessionEndReason,
} from './audit.ts';
import { type CleanupDue, type CleanupDueResult, type CleanupDueRow, cleanupDueStatement, readCleanupRows } from './cleanup-statement.ts';
import { type PgQueryable, pgQueryableOf, rowsOf, type SqlExecutor, type Statement, toSql } from './executor.ts';
import { iso, liveSince, metaColumns, ts, uncacheable } from './fragments.ts';
import type { ObjectNames } from './names.ts';
import { type CreateRow, replacingStatement } from './replace-statement.ts';
import { parseRowText, type RowText, type SessionRow, type TouchEntry, type UpdateResult } from './rows.ts';
import { type HotStatements, hotStatements, touchArrays } from './statements.ts';

// Names importers have always found here: the row types (src/db/rows.ts), the audit's types
// (src/db/audit.ts), the record builder (src/core/records.ts) and the SQL helper `ts` (src/db/fragments.ts).
export { rowToRecord } from '../core/records.ts';
export type { AuditEnd, AuditRow, AuditWriting, SessionEndActor, SessionEndReason } from './audit.ts';
export { ts } from './fragments.ts';
export { parseRowText, type RowText, type SessionRow, type TouchEntry, type UpdateResult } from './rows.ts';

/**
 * All SQL the SessionManager runs, one method per statement. Each public operation is exactly one statement
 * (one round trip, and valid over Neon's HTTP driver). Times are passed in from the manager's clock, never
 * taken from now(). Results are read as plain JSON-friendly types (float8 ms, text ids) so every driver
 * agrees. The statements' pieces: src/db/fragments.ts, src/db/audit.ts, src/db/statements.ts (the hot
 * paths), src/db/cleanup-statement.ts; rows become records in src/core/records.ts.
 */
export class Store {
  readonly #db: SqlExecutor;
  readonly names: ObjectNames;
  /** The database, for the change-feed helpers. */
  get db(): SqlExecutor {
    return this.#db;
  }
  readonly #t: SQL;
  /** The driver's pg-compatible client, while named prepared statements work through it. */
  #client: PgQueryable | undefined;
  readonly #st: HotStatements;

  readonly #audit: AuditWriting;

  constructor(
    db: SqlExecutor,
    names: ObjectNames,
    audit: AuditWriting = { maxPerUser: 1000, onFailure: (e) => console.error(`[pg-edge-session] ${e.message}`) },
  ) {
    this.#db = db;
    this.names = names;
    this.#audit = audit;
    this.#t = sql.raw(names.sessions);
    this.#client = pgQueryableOf(db);
    this.#st = hotStatements(names);
  }

  /** Whether the hot statements run as named prepared statements (see `Statement`). */
  get prepared(): boolean {
    return this.#client !== undefined;
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

  /**
   * Runs a hot statement: named and prepared through the driver's own client when it is node-postgres or
   * Neon's, else through `db.execute`. A server that cannot keep prepared statements (a transaction-mode
   * pooler without their support answers 26000 "does not exist" or 42P05 "already exists", both before
   * anything ran) turns them off for this store, and the statement is sent again through `db.execute`.
   */
  async runStatement<T>(operation: string, st: Statement, values: unknown[]): Promise<T[]> {
    const client = this.#client;
    if (client !== undefined) {
      try {
        return (await client.query({ name: st.name, text: st.text, values })).rows as T[];
      } catch (e) {
        const code = findErrorCode(e);
        if (code !== '26000' && code !== '42P05') throw classifyDatabaseError(operation, e, this.names);
        this.#client = undefined;
      }
    }
    return this.run<T>(operation, toSql(st, values));
  }

  /**
   * Through `session_get` (drizzle/0005): its plan is cached per connection, whatever the driver. Read as
   * text: the same parse every driver would do, and the text's length weighs the row in the cache.
   */
  async selectByTokenHash(hash: string): Promise<RowText | undefined> {
    const rows = await this.runStatement<{ s: string | null }>('getSession', this.#st.get, [hash]);
    return parseRowText(rows[0]?.s);
  }

  /**
   * Inserts and evicts beyond maxSessions atomically (see drizzle/0006). `known` are the caller's newest
   * known last accesses (ms) of sessions, which eviction ranks by when newer than the stored ones. Returns
   * the evicted ids, or `{ tooLarge }` (nothing written) when the attributes exceed `maxBytes`. `replaces`
   * (an old token's hash, its id): deleted first, same statement (src/db/replace-statement.ts), in `replaced`.
   */
  async create(p: {
    id: string;
    hash: string;
    userId: string;
    groupId: string | null;
    attributesJson: string;
    now: number;
    expiresAt: number;
    maxSessions: number;
    maxBytes: number;
    known: [string, number][];
    device: StoredDevice | null;
    audit: boolean;
    impersonatedBy: string | null;
    /** Also tell whether the device is new for the user (same statement). */
    checkNewDevice?: boolean;
    replaces?: { hash: string; id: string | null };
  }): Promise<({ evicted: string[]; newDevice?: boolean } | { tooLarge: number }) & { replaced?: string[] }> {
    const known = p.known.length === 0 ? null : JSON.stringify(p.known.map(([id, ms]) => ({ id, ms })));
    const st = p.checkNewDevice === true ? this.#st.createChecked : this.#st.create;
    const rows = await this.runStatement<CreateRow>('createSession', p.replaces === undefined ? st : replacingStatement(this.names, st), [
      p.id,
      p.hash,
      p.userId,
      p.groupId,
      p.attributesJson,
      iso(p.now),
      iso(p.expiresAt),
      p.maxSessions,
      p.maxBytes,
      known,
      p.device?.userAgent ?? null,
      p.device?.device ?? null,
      p.device?.ip ?? null,
      p.device?.label ?? null,
      p.audit,
      this.#audit.maxPerUser,
      p.impersonatedBy,
      p.device?.location == null ? null : JSON.stringify(p.device.location),
      ...(p.replaces === undefined ? [] : [p.replaces.hash, p.replaces.id]),
    ]);
    const replaced = p.replaces && (rows[0]?.replaced ?? []);
    if (replaced) this.#auditOutcome('createSession (replaced)', [{ audit_error: rows[0]?.replaced_audit_error }], 1);
    const refused = rows.find((r) => r.too_large !== null && r.too_large !== undefined);
    if (refused !== undefined) return { tooLarge: Number(refused.too_large), replaced };
    // The checked form has one row with a null id when nothing was evicted.
    const evicted = rows.filter((r) => r.id !== null);
    this.#auditOutcome('createSession (eviction)', evicted, evicted.length);
    const ids = evicted.map((r) => r.id as string);
    return st === this.#st.create ? { evicted: ids, replaced } : { evicted: ids, newDevice: rows[0]?.new_device === true, replaced };
  }

  /**
   * Merges changed attributes (bumping each one's version) and removes deleted ones, in one statement, if
   * the session still carries the token hash `hash` (a write through a rotated-away or deleted token writes
   * nothing). Other attributes are untouched, so concurrent updates of different keys both survive. With
   * `expectVersion` / `expectAttributeVersions` it is a compare-and-set. When nothing was written the
   * current row comes back with the reason (expired, conflict, too_large); undefined when no session has
   * this id and token.
   */
  async update(p: {
    id: string;
    hash: string;
    changesJson: string;
    deletedJson: string;
    now: number;
    expectVersion: number | null;
    expectAttributeVersions: Record<string, number> | null;
    maxBytes: number;
  }): Promise<UpdateResult | undefined> {
    // `session_update` (drizzle/0006) evaluates every compare-and-set check on the target row itself, so
    // READ COMMITTED's recheck of a concurrently updated row re-evaluates it (no lost update).
    const expectAttributes = p.expectAttributeVersions === null ? null : JSON.stringify(p.expectAttributeVersions);
    const rows = await this.runStatement<{ r: string | null }>('updateSession', this.#st.update, [
      p.id,
      p.hash,
      p.changesJson,
      p.deletedJson,
      iso(p.now),
      p.expectVersion,
      expectAttributes,
      p.maxBytes,
    ]);
    const text = rows[0]?.r;
    if (text === null || text === undefined) return undefined;
    const r = JSON.parse(text) as { updated: boolean; reason?: UpdateResult['reason']; size?: number; row: SessionRow };
    // The row's share of the answer's text: what the cache weighs it by.
    return { updated: r.updated === true, reason: r.reason, size: r.size, row: r.row, textLength: text.length };
  }

  /**
   * New token hash for the session that carries `hash` (only the current token can rotate), in one
   * statement. `idleCutoff`: refuse when the stored last access is not after it (idle-expired).
   */
  async rotate(p: {
    hash: string;
    newHash: string;
    now: number;
    idleCutoff: number | null;
    reauthCutoff: number | null;
    audit: boolean;
  }): Promise<RowText | undefined> {
    const update = sql`UPDATE ${this.#t} AS s SET token_hash = decode(${p.newHash}, 'hex'), version = s.version + 1, updated_at = ${ts(p.now)}
          WHERE s.token_hash = decode(${p.hash}, 'hex') AND s.expires_at > ${ts(p.now)}${liveSince(p.idleCutoff, p.reauthCutoff)}`;
    const rowJson = sql.raw(`${this.names.rowJsonFunction}(s)::text AS r`);
    const rows = await this.run<{ r: string; audit_error?: string | null }>(
      'rotate',
      p.audit
        ? sql`WITH d AS (${update} RETURNING ${rowJson}, ${auditSourceOfS()}, decode(${p.hash}, 'hex') AS token_hash),
              ${this.#auditCte({ reason: 'rotated', endedAt: p.now, actor: { kind: 'rotation', id: null } })}
              SELECT r, (SELECT e FROM a) AS audit_error FROM d`
        : sql`${update} RETURNING ${rowJson}`,
    );
    this.#auditOutcome('rotate', rows, rows.length);
    const text = rows[0]?.r;
    return text === undefined ? undefined : { row: JSON.parse(text) as SessionRow, textLength: text.length };
  }

  /**
   * Moves the session's `authenticated_at` to `now` (the user proved who they are again), in one statement
   * bound like `update` to the token the session was loaded through and its id. Bumps the version, so every
   * cache holding the row drops it (the change record captures version changes). Undefined when no live
   * session carries this id and token (deleted, rotated away, expired, idle or past its re-authentication
   * period: those end, they are not revived).
   */
  async reauthenticate(p: {
    id: string;
    hash: string;
    now: number;
    idleCutoff: number | null;
    reauthCutoff: number | null;
  }): Promise<RowText | undefined> {
    const rows = await this.run<{ r: string }>(
      'reauthenticate',
      sql`UPDATE ${this.#t} AS s SET authenticated_at = ${ts(p.now)}, version = s.version + 1, updated_at = ${ts(p.now)}
          WHERE s.token_hash = decode(${p.hash}, 'hex') AND s.id = ${p.id}::uuid AND s.expires_at > ${ts(p.now)}${liveSince(p.idleCutoff, p.reauthCutoff)}
          RETURNING ${sql.raw(`${this.names.rowJsonFunction}(s)::text AS r`)}`,
    );
    return parseRowText(rows[0]?.r);
  }

  /**
   * Deletes the sessions `where` selects, in one statement; with `audit`, the same statement records why in
   * the audit table (one row per deleted session, so each end is recorded exactly once). Returns the ids.
   */
  async deleteWhere(operation: string, where: SQL, audit?: AuditEnd): Promise<string[]> {
    if (audit === undefined) {
      const rows = await this.run<{ id: string }>(operation, sql`DELETE FROM ${this.#t} WHERE ${where} RETURNING id::text AS id`);
      return rows.map((r) => r.id);
    }
    const rows = await this.run<{ id: string; audit_error: string | null }>(
      operation,
      sql`WITH d AS (DELETE FROM ${this.#t} WHERE ${where} RETURNING ${auditSource()}), ${this.#auditCte(audit)}
          SELECT id::text AS id, (SELECT e FROM a) AS audit_error FROM d`,
    );
    this.#auditOutcome(operation, rows, rows.length);
    return rows.map((r) => r.id);
  }

  /**
   * deleteSession: the session carrying this token hash (and, when given, this id), in one statement; with
   * `audit`, the same statement records why (its actor: the holder, `user`). Returns the ids deleted (none or one).
   */
  async deleteByToken(hash: string, id: string | null, audit?: { reason: SessionEndReason; endedAt: number }): Promise<string[]> {
    const rows =
      audit === undefined
        ? await this.runStatement<{ id: string; audit_error?: string | null }>('deleteSession', this.#st.deleteByToken, [hash, id])
        : await this.runStatement<{ id: string; audit_error?: string | null }>('deleteSession', this.#st.deleteByTokenAudited, [
            hash,
            id,
            audit.reason,
            iso(audit.endedAt),
            this.#audit.maxPerUser,
          ]);
    if (audit !== undefined) this.#auditOutcome('deleteSession', rows, rows.length);
    return rows.map((r) => r.id);
  }

  async deleteAll(audit?: AuditEnd): Promise<number> {
    const rows = await this.run<{ n: number; audit_error?: string | null }>(
      'deleteAllSessions',
      audit === undefined
        ? sql`WITH d AS (DELETE FROM ${this.#t} RETURNING 1) SELECT count(*)::integer AS n, ${uncacheable()} FROM d`
        : sql`WITH d AS (DELETE FROM ${this.#t} RETURNING ${auditSource()}), ${this.#auditCte(audit)}
              SELECT count(*)::integer AS n, (SELECT e FROM a) AS audit_error FROM d`,
    );
    const n = Number(rows[0]?.n ?? 0);
    this.#auditOutcome('deleteAllSessions', rows, n);
    return n;
  }

  /** CTE `a`: the audit rows of the sessions in CTE `d` (see auditCte in src/db/audit.ts). */
  #auditCte(audit: AuditEnd): SQL {
    return auditCte(this.names, audit, this.#audit.maxPerUser);
  }

  /** Reports audit rows an audited statement could not write (its sessions ended all the same). */
  #auditOutcome(operation: string, rows: readonly { audit_error?: string | null }[], sessions: number): void {
    reportAuditFailure(this.#audit, operation, rows, sessions);
  }

  /** A user's recorded session ends, newest first (at most `limit`, before `before` when given). */
  async listAudit(userId: string, limit: number, before: number | null): Promise<AuditRow[]> {
    return this.run<AuditRow>('listSessionEnds', listAuditStatement(this.names, userId, limit, before));
  }

  /**
   * Why a session ended (the newest record: rotations come before the final end), by its id, or by the hash
   * of a token it had (`{ tokenHash }`: the session whose audit rows carry that token's check, drizzle/0013 —
   * what only the holder of the token can name).
   */
  async auditOf(of: { sessionId: string } | { tokenHash: string }): Promise<AuditRow | undefined> {
    const rows = await this.run<AuditRow>('sessionEnd', auditOfStatement(this.names, of));
    return rows[0];
  }

  /** Deletes audit rows that ended before `cutoff`, at most `limit`; returns how many. */
  async pruneAudit(cutoff: number, limit: number): Promise<number> {
    const rows = await this.run<{ n: number }>('pruneAudit', pruneAuditStatement(this.names, cutoff, limit));
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
      sql`SELECT ${metaColumns()}, ${uncacheable()} FROM ${this.#t} WHERE user_id = ${userId} AND expires_at > ${ts(now)} ORDER BY last_accessed DESC, created_at DESC`,
    );
  }

  /**
   * One batch of touches: `[id, last, first]`, the newest and the oldest access since the session's last
   * flush (first ≤ last). GREATEST (and the filter) so last_accessed never moves backwards. A touch never
   * brings back a session that was already dead when it began: the session must not be past its absolute
   * expiry, and — with `idleMs` — its first access must come before the stored last access + idleMs (each
   * access of a coalesced run was checked against the one before it, so the run is alive if its first access
   * was). Times later than `now` (the receiver's clock) are clamped to it. Entries that cannot name a session
   * (not a UUID, not a time) are skipped. The batch travels as three arrays (ids, newest and oldest ms),
   * unnested: cheaper to read than json (~1.3x the rows/s, bench section touches), and as a parameter of a
   * prepared statement its length is unknown to the plan, which stays on the primary key (with a batch's
   * true size in view the planner may hash the whole table for every batch). How the rows are found: the
   * statement's comment in src/db/statements.ts.
   */
  async flushTouches(batch: readonly TouchEntry[], now: number, idleMs: number | null): Promise<number> {
    const values = touchArrays(batch, now);
    if (values === undefined) return 0;
    const rows =
      idleMs === null || idleMs === 0
        ? await this.runStatement<{ n: number }>('flushTouches', this.#st.touches, values)
        : await this.runStatement<{ n: number }>('flushTouches', this.#st.touchesIdle, [...values, idleMs]);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * One cleanup step: the statement of src/db/cleanup-statement.ts over at most `p.limit` sessions whose
   * cleanup deadline has passed. Returns the ids deleted or changed (when asked), how many sessions were
   * deleted, how many had attributes removed, how many rows were picked, and how many other sessions of the
   * database were running a query (what the cleanup's pace adapts to), and the last index key picked (the
   * next statement's `after`; null when none was).
   */
  async cleanupDue(p: CleanupDue): Promise<CleanupDueResult> {
    const rows = await this.run<CleanupDueRow>('deleteExpired', cleanupDueStatement(this.#t, this.names, p, this.#audit.maxPerUser));
    const { result, summary } = readCleanupRows(rows);
    if (summary !== undefined) this.#auditOutcome('deleteExpired', [summary], result.deleted);
    return result;
  }
}
