import { type SQL, sql } from 'drizzle-orm';
import { parseStoredAttributes } from '../core/attributes.ts';
import { recordWeight, type SessionRecord } from '../core/cache.ts';
import type { StoredDevice } from '../core/device.ts';
import { AuditWriteError, classifyDatabaseError, findErrorCode } from '../core/errors.ts';
import { isUuid } from '../core/token.ts';
import { type PgQueryable, pgQueryableOf, rowsOf, type SqlExecutor, type Statement, statement, toSql } from './executor.ts';
import type { ObjectNames } from './names.ts';

/**
 * All SQL the SessionManager runs. Each public operation is exactly one statement (one round trip, and
 * valid over Neon's HTTP driver). Times are passed in from the manager's clock, never taken from now().
 * Results are read as plain JSON-friendly types (float8 ms, text ids) so every driver agrees.
 */

export interface SessionRow {
  id: string;
  /** Listings only (META_COLUMNS). */
  user_agent?: string | null;
  device?: string | null;
  ip?: string | null;
  label?: string | null;
  /** drizzle/0016's json, as text. */
  location?: string | null;
  user_id: string;
  group_id: string | null;
  attributes: unknown;
  version: number;
  created_at: number;
  updated_at: number;
  last_accessed: number;
  expires_at: number;
  /** When the user last proved who they are (drizzle/0012; created_at where the column is null). */
  authenticated_at?: number;
  /** The administrator who opened the session as its user (drizzle/0014), or null. */
  impersonated_by?: string | null;
}

/**
 * A touch as flushed: session id, newest access, oldest access of the run (ms; defaults to the newest). A
 * receiver of touches bounds the oldest access by what it can vouch for (src/host/app.ts, parseTouches), so
 * there it may lie after the newest; the flush's idle test is made with it.
 */
export type TouchEntry = readonly [id: string, last: number, first?: number];

/** A row as the text of its json, parsed; `textLength` weighs it in the cache. */
export interface RowText {
  row: SessionRow;
  textLength: number;
}

export interface UpdateResult extends RowText {
  updated: boolean;
  /** Why nothing was written (when `updated` is false). */
  reason?: 'expired' | 'conflict' | 'too_large';
  /** With reason too_large: the size the attributes would have had. */
  size?: number;
}

const ms = (col: string) => `(extract(epoch from ${col}) * 1000)::float8 AS ${col}`;
/** A session's columns without attributes (listings). */
const META_COLUMNS = sql.raw(
  [
    'id::text AS id',
    'user_id',
    'group_id',
    'version',
    ms('created_at'),
    ms('updated_at'),
    ms('last_accessed'),
    ms('expires_at'),
    '(extract(epoch from COALESCE(authenticated_at, created_at)) * 1000)::float8 AS authenticated_at',
    'user_agent',
    'device',
    'ip',
    'label',
    'impersonated_by',
    // As text, so every driver gives the same string (parsed by the manager).
    'location::text AS location',
  ].join(', '),
);

/** What a deleting statement returns (as CTE `d`) for its audit rows. */
const AUDIT_SOURCE_TEXT = 'id, user_id, group_id, created_at, last_accessed, user_agent, device, ip, label, impersonated_by, token_hash';
const AUDIT_SOURCE = sql.raw(AUDIT_SOURCE_TEXT);
/** The same from an UPDATE's row `s`, less token_hash (a rotation audits the old one, which it replaced). */
const AUDIT_SOURCE_OF_S =
  's.id, s.user_id, s.group_id, s.created_at, s.last_accessed, s.user_agent, s.device, s.ip, s.label, s.impersonated_by';

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
}

/**
 * Added to every read, and to every SELECT whose writes are in a WITH: a volatile function makes the query
 * uncacheable by Cloudflare Hyperdrive (which caches read-only queries for ~60 s by default and would
 * otherwise serve a revoked session, or answer a write from its cache). test/cacheability.test.ts checks
 * every statement the library sends.
 */
const UNCACHEABLE_TEXT = 'clock_timestamp() IS NOT NULL AS uncacheable';
const UNCACHEABLE = sql.raw(UNCACHEABLE_TEXT);

export function ts(msSinceEpoch: number): SQL {
  return sql`${iso(msSinceEpoch)}::timestamptz`;
}

function iso(msSinceEpoch: number): string {
  return new Date(msSinceEpoch).toISOString();
}

const MAX_DATE_MS = 8.64e15;

/** A session row read as the text of its json (null: no such session). */
export function parseRowText(text: string | null | undefined): RowText | undefined {
  if (text === null || text === undefined) return undefined;
  const row = JSON.parse(text) as SessionRow | null;
  return row === null ? undefined : { row, textLength: text.length };
}

/**
 * A row as the cache and sessions hold it. `jsonLength`: the length of the row's JSON text, from which (with
 * the attribute count) the record's estimated heap is weighed for the cache's byte bound (`recordWeight`).
 */
export function rowToRecord(r: SessionRow, jsonLength: number): SessionRecord {
  const attributes = parseStoredAttributes(r.attributes);
  return {
    size: recordWeight(jsonLength, attributes.size),
    id: r.id,
    userId: r.user_id,
    groupId: r.group_id,
    version: Number(r.version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastAccessed: Number(r.last_accessed),
    expiresAt: Number(r.expires_at),
    authenticatedAt: Number(r.authenticated_at ?? r.created_at),
    impersonatedBy: r.impersonated_by ?? null,
    attributes,
  };
}

/**
 * CTE `a` of an audited statement: the audit rows of the sessions in CTE `d` (columns AUDIT_SOURCE), written
 * by session_audit_write (drizzle/0010), which never fails the statement: `(SELECT e FROM a)` is null, or
 * the error that kept the rows from being written. A statement must select it, or the rows are not written.
 */
function auditCte(n: ObjectNames, reason: string, endedAt: string, actor: string, maxPerUser: string): string {
  const [head, tail] = auditJsonOfD(n);
  return `a AS (SELECT ${n.auditWriteFunction}((SELECT json_agg(json_build_object(${head}, 'reason', ${reason}, 'ended_at', ${endedAt}, ${actor}, ${tail})) FROM d), ${maxPerUser}) AS e)`;
}
/**
 * json_build_object's arguments for an audit row of a session in CTE `d`, around its reason, end time and
 * actor (`'actor_kind', …, 'actor_id', …`): the session's columns, and the check of its token hash
 * (drizzle/0013's session_token_check).
 */
function auditJsonOfD(n: ObjectNames): [head: string, tail: string] {
  return [
    `'session_id', d.id, 'user_id', d.user_id, 'group_id', d.group_id`,
    `'created_at', d.created_at, 'last_accessed', d.last_accessed, 'user_agent', d.user_agent, 'device', d.device, 'ip', d.ip, 'label', d.label, 'token_check', ${n.tokenCheckFunction}(d.token_hash), 'impersonated_by', d.impersonated_by`,
  ];
}

/** How audited statements write and report their rows. */
export interface AuditWriting {
  /** Most audit rows kept per user (0: no bound). */
  maxPerUser: number;
  /** Called when audit rows could not be written; the sessions ended anyway. */
  onFailure: (e: AuditWriteError) => void;
}

/** The statements of the hot paths for one set of object names (see `Statement`). */
function hotStatements(n: ObjectNames) {
  const t = n.sessions;
  // $2: the session id the Session was loaded with, or null when deleting by token alone.
  const byToken = `token_hash = decode($1, 'hex') AND ($2::uuid IS NULL OR id = $2::uuid)`;
  const touches = (idle: boolean) =>
    statement(`WITH u AS (
        UPDATE ${t} AS s SET last_accessed = GREATEST(s.last_accessed, v.at)
        FROM (SELECT x.id, to_timestamp(x.ms / 1000) AS at, to_timestamp(x.f / 1000) AS first
              FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS x(id, ms, f)) AS v
        WHERE s.id = v.id AND s.last_accessed < v.at AND s.expires_at > v.at${idle ? ' AND v.first < s.last_accessed + make_interval(secs => $4::float8 / 1000)' : ''}
        RETURNING 1
      ) SELECT count(*)::integer AS n, ${UNCACHEABLE_TEXT} FROM u`);
  const createCall = `${n.createFunction}($1::uuid, decode($2, 'hex'), $3::text, $4::text, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::integer, $9::integer, $10::json, $11::text, $12::text, $13::text, $14::text, $15::boolean, $16::integer, $17::text, $18::jsonb)`;
  // The network of an address: IPv4 /24, IPv6 /48 (null stays null).
  const net = (ip: string) => `network(set_masklen(${ip}::inet, CASE family(${ip}::inet) WHEN 4 THEN 24 ELSE 48 END))`;
  const sameNetwork = (col: string) => `((${col} IS NULL AND $13::text IS NULL) OR ${net(col)} = ${net('$13::text')})`;
  return {
    get: statement(`SELECT ${n.getFunction}(decode($1, 'hex'))::text AS s, ${UNCACHEABLE_TEXT}`),
    create: statement(`SELECT evicted_id::text AS id, too_large, audit_error FROM ${createCall}`),
    // createSession and, read before its insert (the statement's snapshot), whether the device is new for
    // the user: no live session of theirs, and no audit row of one (those kept: auditRetention,
    // auditMaxPerUser), with the same device label on the same network. Impersonations are not the user's.
    createChecked: statement(
      `WITH k AS MATERIALIZED (SELECT NOT EXISTS (
          SELECT 1 FROM ${n.sessions} AS x WHERE x.user_id = $3::text AND x.expires_at > $6::timestamptz AND x.impersonated_by IS NULL
            AND x.device IS NOT DISTINCT FROM $12::text AND ${sameNetwork('x.ip')}
        ) AND NOT EXISTS (
          SELECT 1 FROM ${n.audit} AS y WHERE y.user_id = $3::text AND y.impersonated_by IS NULL
            AND y.device IS NOT DISTINCT FROM $12::text AND ${sameNetwork('y.ip')}
        ) AS new_device)
        SELECT c.evicted_id::text AS id, c.too_large, c.audit_error, k.new_device FROM k LEFT JOIN LATERAL ${createCall} AS c ON true`,
    ),
    update: statement(
      `SELECT ${n.updateFunction}($1::uuid, decode($2, 'hex'), $3::jsonb, $4::jsonb, $5::timestamptz, $6::integer, $7::jsonb, $8::integer)::text AS r`,
    ),
    deleteByToken: statement(`DELETE FROM ${t} WHERE ${byToken} RETURNING id::text AS id`),
    deleteByTokenAudited: statement(
      `WITH d AS (DELETE FROM ${t} WHERE ${byToken} RETURNING ${AUDIT_SOURCE_TEXT}), ${auditCte(n, '$3::text', '$4::timestamptz', `'actor_kind', 'user', 'actor_id', NULL::text`, '$5::integer')}
        SELECT id::text AS id, (SELECT e FROM a) AS audit_error FROM d`,
    ),
    touches: touches(false),
    touchesIdle: touches(true),
  };
}

/**
 * The live-session conditions beyond absolute expiry that writes through a token check (rotate,
 * reauthenticate): not idle (stored last access after `idleCutoff`) and not past the re-authentication
 * period (authenticated after `reauthCutoff`).
 */
function liveSince(idleCutoff: number | null, reauthCutoff: number | null): SQL {
  const idle = idleCutoff === null ? sql`` : sql` AND s.last_accessed > ${ts(idleCutoff)}`;
  const reauth = reauthCutoff === null ? sql`` : sql` AND COALESCE(s.authenticated_at, s.created_at) > ${ts(reauthCutoff)}`;
  return sql`${idle}${reauth}`;
}

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
  readonly #st: ReturnType<typeof hotStatements>;

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
   * the evicted ids, or `{ tooLarge }` (nothing written) when the attributes exceed `maxBytes`.
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
  }): Promise<{ evicted: string[]; newDevice?: boolean } | { tooLarge: number }> {
    const known = p.known.length === 0 ? null : JSON.stringify(p.known.map(([id, ms]) => ({ id, ms })));
    const d = p.device;
    const checked = p.checkNewDevice === true;
    const rows = await this.runStatement<{ id: string | null; too_large: number | null; audit_error: string | null; new_device?: boolean }>(
      'createSession',
      checked ? this.#st.createChecked : this.#st.create,
      [
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
        d?.userAgent ?? null,
        d?.device ?? null,
        d?.ip ?? null,
        d?.label ?? null,
        p.audit,
        this.#audit.maxPerUser,
        p.impersonatedBy,
        d?.location == null ? null : JSON.stringify(d.location),
      ],
    );
    const refused = rows.find((r) => r.too_large !== null && r.too_large !== undefined);
    if (refused !== undefined) return { tooLarge: Number(refused.too_large) };
    // The checked form has one row with a null id when nothing was evicted.
    const evicted = rows.filter((r) => r.id !== null);
    this.#auditOutcome('createSession (eviction)', evicted, evicted.length);
    const ids = evicted.map((r) => r.id as string);
    return checked ? { evicted: ids, newDevice: rows[0]?.new_device === true } : { evicted: ids };
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
        ? sql`WITH d AS (${update} RETURNING ${rowJson}, ${sql.raw(AUDIT_SOURCE_OF_S)}, decode(${p.hash}, 'hex') AS token_hash),
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
      sql`WITH d AS (DELETE FROM ${this.#t} WHERE ${where} RETURNING ${AUDIT_SOURCE}), ${this.#auditCte(audit)}
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
        ? sql`WITH d AS (DELETE FROM ${this.#t} RETURNING 1) SELECT count(*)::integer AS n, ${UNCACHEABLE} FROM d`
        : sql`WITH d AS (DELETE FROM ${this.#t} RETURNING ${AUDIT_SOURCE}), ${this.#auditCte(audit)}
              SELECT count(*)::integer AS n, (SELECT e FROM a) AS audit_error FROM d`,
    );
    const n = Number(rows[0]?.n ?? 0);
    this.#auditOutcome('deleteAllSessions', rows, n);
    return n;
  }

  /** CTE `a`: the audit rows of the sessions in CTE `d`, written without ever failing the statement (see auditCte). */
  #auditCte(audit: AuditEnd): SQL {
    const reason = typeof audit.reason === 'string' ? sql`${audit.reason}::text` : audit.reason;
    const endedAt = typeof audit.endedAt === 'number' ? ts(audit.endedAt) : audit.endedAt;
    const [head, tail] = auditJsonOfD(this.names);
    return sql`a AS (SELECT ${sql.raw(this.names.auditWriteFunction)}((SELECT json_agg(json_build_object(${sql.raw(head)},
      'reason', ${reason}, 'ended_at', ${endedAt}, 'actor_kind', ${audit.actor.kind}::text, 'actor_id', ${audit.actor.id}::text,
      ${sql.raw(tail)})) FROM d), ${this.#audit.maxPerUser}::integer) AS e)`;
  }

  /** Reports audit rows an audited statement could not write (its sessions ended all the same). */
  #auditOutcome(operation: string, rows: readonly { audit_error?: string | null }[], sessions: number): void {
    const failed = rows.find((r) => typeof r.audit_error === 'string')?.audit_error;
    if (failed === undefined || failed === null) return;
    try {
      this.#audit.onFailure(new AuditWriteError(operation, sessions, failed));
    } catch {
      // A throwing reporter must not turn an ended session into a failed call.
    }
  }

  /** A user's recorded session ends, newest first (at most `limit`, before `before` when given). */
  async listAudit(userId: string, limit: number, before: number | null): Promise<AuditRow[]> {
    const until = before === null ? sql`` : sql` AND ended_at < ${ts(before)}`;
    return this.run<AuditRow>(
      'listSessionEnds',
      sql`SELECT session_id::text AS session_id, user_id, group_id, reason, ${sql.raw(ms('ended_at'))}, ${sql.raw(ms('created_at'))},
            ${sql.raw(ms('last_accessed'))}, user_agent, device, ip, label, actor_kind, actor_id, impersonated_by, ${UNCACHEABLE}
          FROM ${sql.raw(this.names.audit)} WHERE user_id = ${userId}${until} ORDER BY ended_at DESC, id DESC LIMIT ${limit}::integer`,
    );
  }

  /**
   * Why a session ended (the newest record: rotations come before the final end), by its id, or by the hash
   * of a token it had (`{ tokenHash }`: the session whose audit rows carry that token's check, drizzle/0013 —
   * what only the holder of the token can name).
   */
  async auditOf(of: { sessionId: string } | { tokenHash: string }): Promise<AuditRow | undefined> {
    const a = sql.raw(this.names.audit);
    const session =
      'sessionId' in of
        ? sql`${of.sessionId}::uuid`
        : sql`(SELECT t.session_id FROM ${a} AS t WHERE t.token_check = ${sql.raw(this.names.tokenCheckFunction)}(decode(${of.tokenHash}, 'hex')) LIMIT 1)`;
    const rows = await this.run<AuditRow>(
      'sessionEnd',
      sql`SELECT session_id::text AS session_id, user_id, group_id, reason, ${sql.raw(ms('ended_at'))}, ${sql.raw(ms('created_at'))},
            ${sql.raw(ms('last_accessed'))}, user_agent, device, ip, label, actor_kind, actor_id, impersonated_by, ${UNCACHEABLE}
          FROM ${a} WHERE session_id = ${session} ORDER BY (reason <> 'rotated') DESC, ended_at DESC, id DESC LIMIT 1`,
    );
    return rows[0];
  }

  /** Deletes audit rows that ended before `cutoff`, at most `limit`; returns how many. */
  async pruneAudit(cutoff: number, limit: number): Promise<number> {
    const a = sql.raw(this.names.audit);
    const rows = await this.run<{ n: number }>(
      'pruneAudit',
      sql`WITH d AS (DELETE FROM ${a} WHERE id IN (SELECT id FROM ${a} WHERE ended_at < ${ts(cutoff)} LIMIT ${limit}::integer) RETURNING 1)
          SELECT count(*)::integer AS n, ${UNCACHEABLE} FROM d`,
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

  /**
   * One batch of touches: `[id, last, first]`, the newest and the oldest access since the session's last
   * flush (first ≤ last). GREATEST (and the filter) so last_accessed never moves backwards. A touch never
   * brings back a session that was already dead when it began: the session must not be past its absolute
   * expiry, and — with `idleMs` — its first access must come before the stored last access + idleMs (each
   * access of a coalesced run was checked against the one before it, so the run is alive if its first access
   * was). Times later than `now` (the receiver's clock) are clamped to it. Entries that cannot name a session
   * (not a UUID, not a time) are skipped. The batch travels as three arrays (ids, newest and oldest ms),
   * unnested: cheaper to read than json (~1.3x the rows/s, bench section touches), and as a parameter of a
   * prepared statement its length is unknown to the plan, which stays one index lookup per touch (with a
   * batch's true size in view the planner may hash the whole table for every batch).
   */
  async flushTouches(batch: readonly TouchEntry[], now: number, idleMs: number | null): Promise<number> {
    const ids: string[] = [];
    const lasts: number[] = [];
    const firsts: number[] = [];
    for (const [id, at, from] of batch) {
      // Whole ms within a Date's range, as a Date would keep them. Ids are checked UUIDs, so the array
      // literals below need no quoting.
      if (!isUuid(id) || !(Math.abs(at) <= MAX_DATE_MS)) continue;
      const last = Math.trunc(Math.min(at, now));
      ids.push(id);
      lasts.push(last);
      // Not capped at `last`: a receiver's bound on the first access may lie after an old last (parseTouches).
      firsts.push(typeof from === 'number' && Math.abs(from) <= MAX_DATE_MS ? Math.trunc(Math.min(from, now)) : last);
    }
    if (ids.length === 0) return 0;
    const values: unknown[] = [`{${ids.join(',')}}`, `{${lasts.join(',')}}`, `{${firsts.join(',')}}`];
    const rows =
      idleMs === null || idleMs === 0
        ? await this.runStatement<{ n: number }>('flushTouches', this.#st.touches, values)
        : await this.runStatement<{ n: number }>('flushTouches', this.#st.touchesIdle, [...values, idleMs]);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * One cleanup statement over the sessions whose cleanup deadline has passed (drizzle/0015), found through
   * an index, oldest deadline first, at most `limit` of them; locked rows are skipped, not waited for.
   * `source: 'due'` reads sessions_cleanup_idx (deadline, or absolute expiry while none is set, at or before
   * `now`); `source: 'unset'` reads sessions_unarmed_idx (no deadline yet, created at or before
   * `unsetCutoff`: old enough to be idle or past its re-authentication period). Of the rows read it deletes
   * the expired ones (absolutely, idle when `idleCutoff` is set, past `reauthCutoff` when set), removes
   * expired attributes from the others, and gives every survivor its next deadline: the earliest of its
   * absolute expiry, its idle end, its re-authentication end and its attributes' expiries. Touches only
   * move those later, so no session is found late; a session touched since its deadline was set is read
   * once more, when that deadline passes, and given a later one. Neither index holds a column that touches
   * or attribute updates change, so those stay HOT updates; cleanup reads what is due, not the table.
   *
   * Returns the ids deleted or changed (when asked), how many sessions were deleted, how many had
   * attributes removed, how many rows were picked, and how many other sessions of the database were running
   * a query (what the cleanup's pace adapts to).
   */
  async cleanupDue(p: {
    source: 'due' | 'unset';
    now: number;
    idleCutoff: number | null;
    /** Sessions last authenticated at or before it are past their re-authentication period (null: none). */
    reauthCutoff?: number | null;
    /** For `source: 'unset'`: sessions created at or before it. */
    unsetCutoff?: number;
    limit: number;
    /** Record each deleted session in the audit table (expired or idle_expired, ending when it expired). */
    audit?: { idleMs: number | null; reauthMs?: number | null };
    /** Return the ids changed (else only how many). */
    ids: boolean;
  }): Promise<{ ids: string[]; deleted: number; attributes: number; picked: number; active: number }> {
    const now = ts(p.now);
    const reauthCutoff = p.reauthCutoff ?? null;
    const pickDue =
      p.source === 'due'
        ? sql`LEAST(cleanup_at, expires_at) <= ${now} ORDER BY LEAST(cleanup_at, expires_at)`
        : sql`cleanup_at IS NULL AND created_at <= ${ts(p.unsetCutoff ?? p.now)} ORDER BY created_at`;
    const idle = p.idleCutoff === null ? sql`` : sql` OR s.last_accessed <= ${ts(p.idleCutoff)}`;
    const reauth = reauthCutoff === null ? sql`` : sql` OR COALESCE(s.authenticated_at, s.created_at) <= ${ts(reauthCutoff)}`;
    const expired = sql`(s.expires_at <= ${now}${idle}${reauth})`;
    // A cheap filter, then exactly the complement of what the UPDATE keeps.
    const attrExpired = sql`COALESCE(jsonb_path_exists(s.attributes, '$.*.exp ? (@ <= $now)', jsonb_build_object('now', ${p.now}::float8))
        AND (SELECT bool_or(jsonb_typeof(a.value -> 'exp') = 'number' AND (a.value ->> 'exp')::float8 <= ${p.now}::float8) FROM jsonb_each(s.attributes) AS a), false)`;
    // The next deadline: each end measured as the cutoffs measure it (the idle end includes the grace).
    const idleEnd = p.idleCutoff === null ? sql`` : sql`, s.last_accessed + ${`${p.now - p.idleCutoff} milliseconds`}::interval`;
    const reauthEnd =
      reauthCutoff === null
        ? sql``
        : sql`, COALESCE(s.authenticated_at, s.created_at) + ${`${p.now - reauthCutoff} milliseconds`}::interval`;
    const deadline = sql`LEAST(s.expires_at${idleEnd}${reauthEnd}, (SELECT to_timestamp(min((a.value ->> 'exp')::float8) / 1000) FROM jsonb_each(s.attributes) AS a
        WHERE jsonb_typeof(a.value -> 'exp') = 'number' AND (a.value ->> 'exp')::float8 > ${p.now}::float8))`;
    const picked = sql`s.ctid = ANY(ARRAY(SELECT tid FROM c))`;
    let deleting = sql`d AS (DELETE FROM ${this.#t} AS s WHERE ${picked} AND ${expired} RETURNING s.id),`;
    const auditing = p.audit !== undefined;
    if (p.audit !== undefined) {
      const expiredD = sql`d.expires_at <= ${now}`;
      const idleEndD = p.audit.idleMs === null ? sql`d.expires_at` : sql`d.last_accessed + ${`${p.audit.idleMs} milliseconds`}::interval`;
      const reauthMs = p.audit.reauthMs ?? null;
      // Past its re-authentication period (drizzle/0012): ended at authenticated_at + the period, when that
      // came before it went idle.
      const reauthEndD = reauthMs === null ? sql`d.expires_at` : sql`d.authenticated_at + ${`${reauthMs} milliseconds`}::interval`;
      // Data-modifying CTEs must be at the top level: the delete and its audit rows come before `m`.
      deleting = sql`d AS (DELETE FROM ${this.#t} AS s WHERE ${picked} AND ${expired}
            RETURNING ${AUDIT_SOURCE}, expires_at, COALESCE(authenticated_at, created_at) AS authenticated_at),
          ${this.#auditCte({
            actor: { kind: 'cleanup', id: null },
            reason: sql`CASE WHEN ${expiredD} THEN 'expired' WHEN ${reauthEndD} < LEAST(${idleEndD}, d.expires_at) THEN 'reauthentication_expired' ELSE 'idle_expired' END`,
            endedAt: sql`CASE WHEN ${expiredD} THEN d.expires_at ELSE LEAST(${idleEndD}, ${reauthEndD}, d.expires_at) END`,
          })},`;
    }
    // The ids come back only for a caller with a cache to invalidate (the worker's cleaner has none).
    const idRows = p.ids
      ? sql`SELECT id::text AS id, NULL::float8 AS picked, NULL::float8 AS deleted, NULL::float8 AS attributes, NULL::float8 AS active, NULL::text AS audit_error
          FROM (SELECT id FROM d UNION ALL SELECT id FROM x) AS m UNION ALL `
      : sql``;
    const rows = await this.run<{
      id: string | null;
      picked: number | null;
      deleted: number | null;
      attributes: number | null;
      active: number | null;
      audit_error: string | null;
    }>(
      'deleteExpired',
      sql`WITH c AS MATERIALIZED (
            SELECT ctid AS tid FROM ${this.#t} WHERE ${pickDue} LIMIT ${p.limit}::integer FOR UPDATE SKIP LOCKED
          ), ${deleting}
          x AS (UPDATE ${this.#t} AS s SET
              attributes = (SELECT COALESCE(jsonb_object_agg(a.key, a.value), '{}'::jsonb) FROM jsonb_each(s.attributes) AS a
                            WHERE jsonb_typeof(a.value -> 'exp') IS DISTINCT FROM 'number' OR (a.value ->> 'exp')::float8 > ${p.now}::float8),
              version = s.version + 1,
              updated_at = ${now},
              cleanup_at = ${deadline}
            WHERE ${picked} AND NOT ${expired} AND ${attrExpired}
            RETURNING s.id),
          -- The others get their next deadline (run to completion though nothing reads it).
          r AS (UPDATE ${this.#t} AS s SET cleanup_at = ${deadline} WHERE ${picked} AND NOT ${expired} AND NOT ${attrExpired})
          ${idRows}SELECT NULL::text AS id, count(*)::float8 AS picked, (SELECT count(*) FROM d)::float8 AS deleted,
            (SELECT count(*) FROM x)::float8 AS attributes,
            (SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
              AND datname = current_database())::float8 AS active, ${auditing ? sql`(SELECT e FROM a)` : sql`NULL::text`} AS audit_error
            FROM c`,
    );
    const ids: string[] = [];
    let summary: (typeof rows)[number] | undefined;
    for (const r of rows) {
      if (r.id === null) summary = r;
      else ids.push(r.id);
    }
    const deleted = Number(summary?.deleted ?? 0);
    if (summary !== undefined) this.#auditOutcome('deleteExpired', [summary], deleted);
    return {
      ids,
      deleted,
      attributes: Number(summary?.attributes ?? 0),
      picked: Number(summary?.picked ?? 0),
      active: Number(summary?.active ?? 0),
    };
  }
}
