import { sql } from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import type { SqlExecutor } from '../db/executor.ts';
import { objectNames } from '../db/names.ts';
import { type AuditRow, rowToRecord, type SessionEndActor, type SessionEndReason, Store, type TouchEntry } from '../db/store.ts';
import { recordReset } from '../feed.ts';
import { prepareValue, validateKey } from './attributes.ts';
import { type CacheEntry, recordWeight, SessionCache, type SessionRecord } from './cache.ts';
import { type ResolvedConfig, resolveConfig, type SessionConfig } from './config.ts';
import { type DeviceInfo, type DeviceLocation, prepareDevice } from './device.ts';
import {
  ImpersonationError,
  InvalidArgumentError,
  ReauthenticationRequiredError,
  SessionNotFoundError,
  SessionTooLargeError,
  VersionConflictError,
} from './errors.ts';
import { type Attributes, Session, toMillis } from './session.ts';
import { generateToken, hashToken, isUuid, isWellFormedToken, TOKEN_LENGTH } from './token.ts';

export interface CreateSessionOptions {
  /** Optional group (a tenant, a device family...) for `deleteSessionsByGroup`. */
  groupId?: string;
  /** Absolute expiry; default now + sessionExpiration. Must be in the future. */
  expiresAt?: number | Date;
  /**
   * Device metadata stored with the session and shown by `listUserSessions` (the middleware's `login()`
   * fills it from the request). Written by the same statement that creates the session.
   */
  device?: DeviceInfo;
  /**
   * An administrator opens the session as `userId` (support, debugging): their id (at most 512
   * characters), shown in listings, on the Session and in the audit rows. The session lives at most
   * `impersonationMaxLifetime` (an explicit `expiresAt` beyond it is an InvalidArgumentError), evicts none
   * of the user's sessions, cannot step up (`reauthenticate`: ImpersonationError; never fresh for
   * `requireFresh`), and the middleware refuses to start another impersonation from it.
   */
  impersonatedBy?: string;
  /**
   * Also tell (`newDevice` in the result) whether the device is new for the user: no live session of theirs
   * and no audit row kept of one has the same device label on the same network (IPv4 /24, IPv6 /48; both
   * without an IP counts as the same). Checked by the create statement itself (still one statement). Never
   * for an impersonation (`newDevice` false).
   */
  checkNewDevice?: boolean;
}

export interface DeleteSessionOptions {
  /** Why, for the audit record: `'logout'` (default) or `'replaced'` (a new sign-in replaced it). */
  reason?: 'logout' | 'replaced';
}

/**
 * Who ends sessions, for the audit record, as an app names it: the user themself, one of the user's sessions
 * (a "sign out that device" button: the id of the session the request came with) or an administrator (the
 * app's own id for them, at most 512 characters). Recorded as given: the library does not check that the
 * session is the user's or that the id is an administrator's.
 */
export type SessionEndActorInput = { kind: 'user' } | { kind: 'session'; id: string } | { kind: 'admin'; id: string };

export interface DeleteSessionByIdOptions {
  /**
   * Only delete the session if it belongs to this user (a user revoking one of their own devices): a
   * session of another user is not found and nothing is deleted. Recorded as `'revoked'`; without it the
   * delete is an administrator's (`'admin_revoked'`).
   */
  userId?: string;
  /** Who ends it (audit). Default: `{ kind: 'user' }` with `userId`, else an administrator without an id. */
  actor?: SessionEndActorInput;
}

export interface BulkDeleteOptions {
  /** Who ends them (audit). Default: an administrator without an id. */
  actor?: SessionEndActorInput;
}

export interface ListUserSessionsOptions {
  /** The caller's own session (a Session, or its id): its entry gets `current: true`. */
  current?: { readonly id: string } | string;
}

export interface GetSessionOptions {
  /** Record a last access (in memory; written later in a batch). Default true. */
  touch?: boolean;
  /** Skip the cache and read the database. Default false. */
  forceRefresh?: boolean;
}

export interface UpdateSessionOptions {
  /** Compare-and-set on the session's version: any change since load → VersionConflictError. */
  checkVersion?: boolean;
  /** Compare-and-set on the versions of the attributes this update changes or deletes. */
  checkAttributeVersion?: boolean;
}

export interface DeleteUserSessionsOptions {
  /** Keep this session (e.g. "sign out everywhere else"). */
  exceptSessionId?: string;
  /** Who ends them (audit). Default: the kept session (`exceptSessionId`), else an administrator without an id. */
  actor?: SessionEndActorInput;
}

/** A session's metadata as listed by `listUserSessions`: never its token, never its attributes. */
export interface SessionInfo {
  id: string;
  userId: string;
  groupId: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  /** Newest known last access, including touches this manager has not written yet. */
  lastAccessedAt: Date;
  expiresAt: Date;
  /** When the user last proved who they are (sign-in or `reauthenticate`). */
  authenticatedAt: Date;
  /** The administrator who opened it as the user (an impersonation), or null. */
  impersonatedBy: string | null;
  /** The user agent the session was created with (at most 512 characters), or null. */
  userAgent: string | null;
  /** A short label derived from it ("Firefox on Linux"), or null. */
  device: string | null;
  /** The client IP recorded at creation, or null. */
  ip: string | null;
  /** The app's own label, or null. */
  label: string | null;
  /**
   * Where the client was at sign-in (`{ country?, region?, city?, colo? }`: Cloudflare's `request.cf`, or a
   * trusted proxy's `CF-IPCountry`; see the middleware's `clientIp`), or null.
   */
  location: DeviceLocation | null;
  /** True for the session given as `current`. */
  current: boolean;
}

/** One recorded session end (see the `audit` option). Never a token or a token hash. */
export interface SessionEndInfo {
  sessionId: string;
  userId: string;
  groupId: string | null;
  reason: SessionEndReason;
  /** Who ended it (`id`: the ending session's, the administrator's, or the evicting session's); null on rows written before drizzle/0013. */
  actor: SessionEndActor | null;
  /** The administrator who had opened it as the user, or null. */
  impersonatedBy: string | null;
  endedAt: Date;
  createdAt: Date;
  lastAccessedAt: Date;
  userAgent: string | null;
  device: string | null;
  ip: string | null;
  label: string | null;
}

export interface CreatedSession<A extends Attributes> {
  session: Session<A>;
  /** Give it to the client (the cookie); only its SHA-256 is stored. */
  token: string;
  /** With `checkNewDevice`: whether the device was new for the user. */
  newDevice?: boolean;
}

export interface FlushResult {
  /** Sessions whose last_accessed moved forward. */
  rows: number;
  /** Statements sent. */
  batches: number;
}

export interface CleanupResult {
  sessions: number;
  attributes: number;
  /** Audit rows pruned (older than auditRetention). */
  audit: number;
  batches: number;
}

/**
 * Pause between cleanup statements, as a multiple of the statement's duration, by default adaptive:
 * between CLEANUP_PAUSE_MIN (other sessions of the database idle: cleanup takes up to half of one
 * database core) and CLEANUP_PAUSE_MAX (other sessions running queries: cleanup keeps about 1/31, 3%, of
 * one core busy, and request-path queries keep theirs). Each cleanup statement also counts the other
 * sessions of its database that are running a query at that moment (pg_stat_activity): one seen sets the
 * full pause, and the pause relaxes towards the minimum only while statement after statement sees none,
 * so cleanup speeds up when requests stop and slows down as soon as they come back. Measured on a 2-core machine whose cores 4 readers keep
 * busy (bench/, section cleanup): reader p99 +50-330% with no pause, +10-130% at 4, +3-50% at 8, around
 * +9% (-8 to +18%) at 30.
 */
const CLEANUP_PAUSE_MIN = 1;
const CLEANUP_PAUSE_MAX = 30;
/** Bound on touches held in memory between flushes (ids beyond it are not recorded until a flush). */
export const MAX_PENDING_TOUCHES = 200_000;
const MAX_USER_ID_LENGTH = 512;
/** Known accesses one createSession sends for eviction at most (a user has a handful of sessions). */
const MAX_KNOWN_PER_CREATE = 1000;

/** What a manager knows of one session's accesses (one object per session, updated in place). */
interface Touch {
  /** The session's user ('' when only known from restored touches): indexes #touchedByUser. */
  readonly userId: string;
  /** Newest known access, ms. */
  at: number;
  /** Oldest access of the pending run (when `pending`), ms. */
  first: number;
  /** In #pending: accessed since the touches were last taken. */
  pending: boolean;
  /** In #touched (false once its LRU dropped it): a cache entry holding it may use it without a lookup. */
  live: boolean;
}

const encoder = new TextEncoder();
function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/**
 * Server-side sessions in PostgreSQL through any Drizzle database. One per isolate or process.
 *
 * Reads hit an in-memory LRU (no I/O) while the entry is fresh (see `maxStaleness`); a miss is one
 * SELECT. Every write is one statement. Reads never write: touches are kept in memory and written in
 * batches, every lastAccessUpdateInterval, off the request path: by the sync host when a SyncClient is
 * attached; otherwise by the manager itself, on an unref'd timer where the runtime has one (Node, Bun) and
 * through sessionMiddleware after a response (`waitUntil` on Workers); `close()` writes what is left.
 */
export class SessionManager<A extends Attributes = Attributes> {
  readonly config: Readonly<ResolvedConfig>;
  /** The per-isolate cache; the sync client drives `invalidate`, `clear` and `markFresh`. */
  readonly cache: SessionCache;
  readonly #store: Store;
  readonly #clock: () => number;
  /** Newest known last access per session id (survives flushes, so idle expiry and eviction use it). */
  readonly #touched: LRUCache<string, Touch>;
  /** The touches not yet handed on (written, or taken by the sync client): a subset of #touched's values. */
  #pending = new Map<string, Touch>();
  /** Ids in #touched per user: what createSession tells max-sessions eviction about. */
  readonly #touchedByUser = new Map<string, Set<string>>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #flushing: Promise<FlushResult> | undefined;
  /** When the oldest pending touch was recorded (ms, the manager's clock); +Infinity while none is pending. */
  #pendingSince = Number.POSITIVE_INFINITY;
  /**
   * Who writes the touches: 'self' (the default: this manager, on its own unref'd timer where the runtime has
   * one, and through the middleware after responses), 'sync' (a SyncClient takes them to the sync host) or
   * 'tasks' (startBackgroundTasks' timer).
   */
  #touchWriter: 'self' | 'sync' | 'tasks' = 'self';
  /** The lazily armed flush timer ('self' only); false once the runtime showed it has no background timers. */
  #flushTimer: ReturnType<typeof setTimeout> | undefined | false;
  /** A sessionMiddleware hands due flushes to waitUntil / the background after its responses. */
  #flushedAfterResponses = false;
  #warnedNoFlush = false;

  constructor(db: SqlExecutor, config: SessionConfig = {}) {
    this.config = Object.freeze(resolveConfig(config));
    if (db === null || typeof db !== 'object' || typeof (db as { execute?: unknown }).execute !== 'function') {
      throw new InvalidArgumentError('db', 'expected a Drizzle PostgreSQL database (drizzle(...) from any drizzle-orm pg driver)');
    }
    this.#clock = this.config.clock;
    this.#store = new Store(db, objectNames(this.config.schemaName, this.config.tablePrefix), {
      maxPerUser: this.config.auditMaxPerUser,
      onFailure: this.config.onAuditError,
    });
    this.cache = new SessionCache(this.config.cacheSize, this.config.cacheMaxBytes);
    this.#touched = new LRUCache<string, Touch>({
      max: Math.max(1000, this.config.cacheSize * 2),
      dispose: (t, id) => {
        t.live = false;
        const ids = this.#touchedByUser.get(t.userId);
        if (ids === undefined) return;
        ids.delete(id);
        if (ids.size === 0) this.#touchedByUser.delete(t.userId);
      },
    });
  }

  /** @internal The SQL layer (the sync client reads the change record through it). */
  get store(): Store {
    return this.#store;
  }

  /** Quoted names of the tables this manager uses. */
  get names() {
    return this.#store.names;
  }

  /** Touches recorded and not yet written. */
  get pendingTouchCount(): number {
    return this.#pending.size;
  }

  // ---- create / read ----------------------------------------------------------------------------

  async createSession(userId: string, attributes: Partial<A> = {}, options: CreateSessionOptions = {}): Promise<CreatedSession<A>> {
    checkUserId(userId, 'userId');
    const groupId = options.groupId ?? null;
    if (groupId !== null) checkUserId(groupId, 'groupId');
    if (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes)) {
      throw new InvalidArgumentError('attributes', 'expected a plain object of attribute values');
    }
    const device = prepareDevice(options.device);
    const impersonatedBy = options.impersonatedBy ?? null;
    if (impersonatedBy !== null) checkUserId(impersonatedBy, 'impersonatedBy');
    const now = this.#clock();
    const longest = impersonatedBy === null ? Number.POSITIVE_INFINITY : now + this.config.impersonationMaxLifetime;
    const expiresAt = toMillis(options.expiresAt) ?? Math.min(now + this.config.sessionExpiration, longest);
    if (expiresAt <= now) throw new InvalidArgumentError('expiresAt', 'must be in the future');
    if (expiresAt > longest) {
      throw new InvalidArgumentError(
        'expiresAt',
        `an impersonation lives at most impersonationMaxLifetime (${this.config.impersonationMaxLifetime} ms)`,
      );
    }
    const parts: string[] = [];
    const records = new Map<string, { value: unknown; version: number; expiresAt: number | null }>();
    for (const key of Object.keys(attributes)) {
      validateKey(key);
      const value = (attributes as Record<string, unknown>)[key];
      if (value === undefined) continue;
      const { json, frozen } = prepareValue(key, value, this.config.maxAttributeLength);
      parts.push(`${JSON.stringify(key)}:{"v":${json},"ver":1}`);
      records.set(key, { value: frozen, version: 1, expiresAt: null });
    }
    const attributesJson = `{${parts.join(',')}}`;
    // PostgreSQL prints jsonb with more spaces than JSON.stringify: too large here is too large there.
    const maxBytes = this.config.maxSessionBytes;
    if (attributesJson.length > maxBytes) {
      const size = utf8Length(attributesJson);
      if (size > maxBytes) throw new SessionTooLargeError(size, maxBytes);
    }
    const token = generateToken();
    const hash = await hashToken(token);
    const id = crypto.randomUUID();
    const epoch = this.cache.begin();
    const created = await this.#store.create({
      id,
      hash,
      userId,
      groupId,
      attributesJson,
      now,
      expiresAt,
      maxSessions: this.config.maxSessions,
      maxBytes,
      known: this.#knownAccesses(userId),
      device,
      audit: this.config.audit,
      impersonatedBy,
      checkNewDevice: options.checkNewDevice === true && impersonatedBy === null,
    });
    if ('tooLarge' in created) throw new SessionTooLargeError(created.tooLarge, maxBytes);
    if (created.evicted.length > 0) this.cache.invalidate(created.evicted);
    const record: SessionRecord = {
      size: recordWeight(attributesJson.length, records.size),
      id,
      userId,
      groupId,
      version: 1,
      createdAt: now,
      updatedAt: now,
      lastAccessed: now,
      expiresAt,
      authenticatedAt: now,
      impersonatedBy,
      attributes: records,
    };
    this.cache.fill(token, record, now, epoch);
    const session = this.#wrap(record, token);
    if (options.checkNewDevice === true) return { session, token, newDevice: created.newDevice === true };
    return { session, token };
  }

  /**
   * The session for a token, or null when the token is malformed (no query), unknown, or the session
   * expired (absolutely, or idle by its newest known last access).
   */
  async getSession(token: string, options: GetSessionOptions = {}): Promise<Session<A> | null> {
    const now = this.#clock();
    // maxStaleness 0 promises that every read goes to the database, also within one clock tick. The cache
    // is looked up before the token is checked: only well-formed tokens are ever cached (checked, or made
    // here, when they were), so a hit needs no check and anything else misses.
    if (options.forceRefresh !== true && this.config.maxStaleness > 0 && typeof token === 'string' && token.length === TOKEN_LENGTH) {
      const hit = this.cache.entry(token, now, this.config.maxStaleness);
      if (hit !== undefined) return this.#serveCached(hit, token, now, options.touch);
    }
    if (!isWellFormedToken(token)) return null;
    const epoch = this.cache.begin();
    const readAt = this.#clock();
    const read = await this.#store.selectByTokenHash(await hashToken(token));
    if (read === undefined) return null;
    const record = rowToRecord(read.row, read.textLength);
    if (!this.#alive(record, now)) return null;
    this.cache.fill(token, record, readAt, epoch);
    return this.#serve(record, token, now, options.touch);
  }

  /**
   * A cache hit. The entry keeps the session's Touch (its `owner` slot), so recording the access is a few
   * field writes; the touch LRU's recency is refreshed when a new pending run starts (once per flush or
   * take), which is what keeps a busy session's bookkeeping from being dropped.
   */
  #serveCached(entry: CacheEntry, token: string, now: number, touch: boolean | undefined): Session<A> | null {
    const record = entry.record;
    const t = entry.owner as Touch | undefined;
    if (t === undefined || !t.live) {
      if (!this.#alive(record, now, t)) return null;
      if (touch !== false) entry.owner = this.#touch(record, now, t);
      return this.#wrap(record, token);
    }
    if (record.expiresAt <= now) return null;
    const idle = this.config.inactivityDuration;
    if (idle !== 0 && Math.max(t.at, record.lastAccessed) + idle <= now) return null;
    const reauth = this.config.reauthenticationPeriod;
    if (reauth !== 0 && record.authenticatedAt + reauth <= now) return null;
    if (touch !== false) {
      if (now > t.at) t.at = now;
      if (!t.pending) this.#touched.get(record.id);
      this.#markPending(record.id, t, now);
    }
    return this.#wrap(record, token);
  }

  #serve(record: SessionRecord, token: string, now: number, touch: boolean | undefined): Session<A> | null {
    if (!this.#alive(record, now)) return null;
    if (touch !== false) this.#touch(record, now);
    return this.#wrap(record, token);
  }

  #wrap(record: SessionRecord, token: string): Session<A> {
    return new Session<A>(record, token, this.#clock, this.config.maxAttributeLength);
  }

  /**
   * Newest known last access: the stored one or a touch this manager recorded since (`held`: the Touch a
   * cache entry kept, for when the touch LRU dropped it).
   */
  #lastAccess(record: { id: string; lastAccessed: number }, held?: Touch): number {
    const t = this.#touched.peek(record.id) ?? held;
    return t !== undefined && t.at > record.lastAccessed ? t.at : record.lastAccessed;
  }

  #alive(record: SessionRecord, now: number, held?: Touch): boolean {
    if (record.expiresAt <= now) return false;
    const reauth = this.config.reauthenticationPeriod;
    if (reauth !== 0 && record.authenticatedAt + reauth <= now) return false;
    const idle = this.config.inactivityDuration;
    return idle === 0 || this.#lastAccess(record, held) + idle > now;
  }

  /**
   * Records an access of a session this manager just found alive. No I/O: written later, in a batch.
   * `held`: the session's Touch as a cache entry kept it, adopted again if the touch LRU dropped it (so a
   * pending run is not lost). Returns the Touch.
   */
  #touch(record: SessionRecord, at: number, held?: Touch): Touch {
    const t = this.#known(record.id, record.userId, at, held);
    if (at > t.at) t.at = at;
    this.#markPending(record.id, t, at);
    return t;
  }

  /** The #touched entry of a session, made (or `held` adopted) and indexed by user when missing. */
  #known(id: string, userId: string | undefined, at: number, held?: Touch): Touch {
    let t = this.#touched.get(id);
    if (t === undefined) {
      t = held ?? { userId: userId ?? '', at, first: at, pending: false, live: true };
      t.live = true;
      this.#touched.set(id, t);
      // Indexed under the user the Touch was made for (dispose removes it from there).
      if (t.userId !== '') {
        const ids = this.#touchedByUser.get(t.userId);
        if (ids === undefined) this.#touchedByUser.set(t.userId, new Set([id]));
        else ids.add(id);
      }
    }
    return t;
  }

  /** Starts a pending run at `first` (or extends the one pending back to it). */
  #markPending(id: string, t: Touch, first: number): void {
    if (t.pending) {
      if (first < t.first) t.first = first;
    } else if (this.#pending.size < MAX_PENDING_TOUCHES) {
      t.pending = true;
      t.first = first;
      // Once per session per flush cycle, never on a hit of a session already pending.
      if (this.#pending.size === 0) this.#startPendingRun();
      else if (this.#flushTimer === false) this.#warnIfNeverFlushed();
      this.#pending.set(id, t);
    }
  }

  /** The first touch since the last flush: note when, and arm the flush timer (Node, Bun) if this manager writes its own. */
  #startPendingRun(): void {
    this.#pendingSince = this.#clock();
    if (this.#touchWriter !== 'self' || this.#flushTimer !== undefined) return;
    const timer = setTimeout(() => {
      this.#flushTimer = undefined;
      if (this.#touchWriter === 'self' && this.#pending.size > 0) this.flushTouches().catch((e) => this.#reportFlushError(e));
    }, this.config.lastAccessUpdateInterval);
    const handle = timer as unknown as { unref?: unknown } | number;
    if (typeof handle === 'object' && handle !== null && typeof handle.unref === 'function') {
      // A long-lived process (Node, Bun): the timer must not keep it alive; close() writes what is left.
      handle.unref();
      this.#flushTimer = timer;
    } else {
      // No unref: a runtime whose timers do not outlive a request (Workers, Deno Deploy, Vercel Edge). The
      // middleware flushes there, after a response; nothing else would.
      clearTimeout(timer);
      this.#flushTimer = false;
    }
  }

  /**
   * On a runtime without background timers, touches kept for twice lastAccessUpdateInterval without anything
   * writing them mean nothing ever will: say so, once.
   */
  #warnIfNeverFlushed(): void {
    if (this.#warnedNoFlush || this.#touchWriter !== 'self' || this.#flushedAfterResponses) return;
    if (this.#clock() - this.#pendingSince < 2 * this.config.lastAccessUpdateInterval) return;
    this.#warnedNoFlush = true;
    console.warn(
      `[pg-edge-session] ${this.#pending.size} sessions' last accesses have waited ${Math.round((this.#clock() - this.#pendingSince) / 1000)} s ` +
        'in memory and nothing writes them: this runtime has no background timers, and this manager has no sessionMiddleware ' +
        '(which writes them after a response, through waitUntil) and no SyncClient. Use either, or call manager.flushTouches() ' +
        '(e.g. in ctx.waitUntil) every lastAccessUpdateInterval; otherwise other processes see these users as idle.',
    );
  }

  #reportFlushError(e: unknown): void {
    console.error('[pg-edge-session] writing last accesses failed (kept, retried after lastAccessUpdateInterval):', e);
  }

  /**
   * @internal Called by the SyncClient made for this manager: touches go to the sync host from now on, so
   * this manager no longer writes them on its own.
   */
  _touchesTakenBySync(): void {
    this.#touchWriter = 'sync';
    this.#disarmFlushTimer();
  }

  /** @internal Called by sessionMiddleware: it runs `flushTouchesIfDue()` after its responses. */
  _flushedAfterResponses(): void {
    this.#flushedAfterResponses = true;
  }

  #disarmFlushTimer(): void {
    if (this.#flushTimer !== undefined && this.#flushTimer !== false) clearTimeout(this.#flushTimer);
    if (this.#flushTimer !== false) this.#flushTimer = undefined;
  }

  /**
   * The flush of touches when one is due: this manager writes its own touches (no SyncClient, no
   * startBackgroundTasks) and the oldest pending one is lastAccessUpdateInterval old. Undefined otherwise.
   * sessionMiddleware calls it after each response and hands the flush to `waitUntil` (Workers) or lets it
   * run in the background (Node); a read never waits for it.
   */
  flushTouchesIfDue(): Promise<FlushResult> | undefined {
    if (this.#touchWriter !== 'self' || this.#clock() - this.#pendingSince < this.config.lastAccessUpdateInterval) return undefined;
    return this.flushTouches();
  }

  /** Newest known accesses of a user's sessions, for max-sessions eviction (bounded). */
  #knownAccesses(userId: string): [string, number][] {
    const ids = this.#touchedByUser.get(userId);
    if (ids === undefined) return [];
    const out: [string, number][] = [];
    for (const id of ids) {
      const t = this.#touched.peek(id);
      if (t !== undefined) out.push([id, t.at]);
      if (out.length >= MAX_KNOWN_PER_CREATE) break;
    }
    return out;
  }

  // ---- update -----------------------------------------------------------------------------------

  /**
   * Stores the session's pending attribute changes in one statement and rebases the session on the row
   * written. Only changed and deleted keys are written. Throws SessionNotFoundError if the session is gone
   * or expired, VersionConflictError (nothing written) when a requested check fails.
   */
  async updateSession(session: Session<A>, options: UpdateSessionOptions = {}): Promise<Session<A>> {
    if (!(session instanceof Session)) throw new InvalidArgumentError('session', 'expected a Session from this library');
    const { changes, deleted, record } = session._pending();
    if (changes.size === 0 && deleted.size === 0) return session;
    const parts: string[] = [];
    for (const [k, c] of changes) parts.push(`${JSON.stringify(k)}:{"v":${c.json}${c.expiresAt === null ? '' : `,"exp":${c.expiresAt}`}}`);
    let expectAttributeVersions: Record<string, number> | null = null;
    if (options.checkAttributeVersion === true) {
      const expected: Record<string, number> = Object.create(null);
      for (const k of [...changes.keys(), ...deleted]) expected[k] = record.attributes.get(k)?.version ?? 0;
      expectAttributeVersions = expected;
    }
    const now = this.#clock();
    if (this.#pastReauthentication(record.authenticatedAt, now)) {
      this.cache.invalidate([record.id]);
      throw new SessionNotFoundError(record.id);
    }
    const token = session._token();
    const hash = await hashToken(token);
    const epoch = this.cache.begin();
    const result = await this.#store.update({
      id: record.id,
      hash,
      changesJson: `{${parts.join(',')}}`,
      deletedJson: JSON.stringify([...deleted]),
      now,
      expectVersion: options.checkVersion === true ? record.version : null,
      expectAttributeVersions,
      maxBytes: this.config.maxSessionBytes,
    });
    // No session carries this id and token any more: deleted, or its token rotated away. Nothing written.
    if (result === undefined) {
      this.cache.invalidate([record.id]);
      throw new SessionNotFoundError(record.id);
    }
    const current = rowToRecord(result.row, result.textLength);
    if (!result.updated) {
      const checked = options.checkVersion === true || options.checkAttributeVersion === true;
      if (result.reason === 'too_large') throw new SessionTooLargeError(Number(result.size), this.config.maxSessionBytes);
      if (result.reason === 'expired' || current.expiresAt <= now || !checked) {
        this.cache.invalidate([record.id]);
        throw new SessionNotFoundError(record.id);
      }
      const conflicting = [...changes.keys(), ...deleted].filter(
        (k) => (current.attributes.get(k)?.version ?? 0) !== (record.attributes.get(k)?.version ?? 0),
      );
      // The statement matched the row by this token's hash: the token is current, the row may be cached.
      this.cache.refresh(current, now, epoch, token);
      throw new VersionConflictError(record.id, record.version, current.version, conflicting);
    }
    this.cache.refresh(current, now, epoch, token);
    session._rebase(current);
    return session;
  }

  // ---- rotate -----------------------------------------------------------------------------------

  /**
   * Issues a new token for the same session (same id, data and expiry), atomically: the old token stops
   * working at commit, everywhere (its cache entries are invalidated like any change). Only the current
   * token rotates: a Session loaded through a token that was rotated away since cannot mint a new one.
   * Returns null when the token is malformed, unknown, rotated away or expired.
   */
  async rotate(target: string | Session<A>): Promise<CreatedSession<A> | null> {
    const oldToken = target instanceof Session ? target._token() : target;
    if (!isWellFormedToken(oldToken)) return null;
    const hash = await hashToken(oldToken);
    const token = generateToken();
    const newHash = await hashToken(token);
    const now = this.#clock();
    const idle = this.config.inactivityDuration;
    // Idle check uses the newest touch this manager knows of (like getSession); for a token, the cache
    // knows its session id if this manager read it (which is when it recorded a touch).
    const knownId = target instanceof Session ? target.id : this.cache.idOf(oldToken);
    const lastKnown = knownId === undefined ? undefined : this.#touched.peek(knownId)?.at;
    const idleCutoff = idle === 0 || (lastKnown !== undefined && lastKnown + idle > now) ? null : now - idle;
    const epoch = this.cache.begin();
    const rotated = await this.#store.rotate({
      hash,
      newHash,
      now,
      idleCutoff,
      reauthCutoff: this.#reauthCutoff(now),
      audit: this.config.audit,
    });
    if (rotated === undefined) {
      if (target instanceof Session) this.cache.invalidate([target.id]);
      else this.cache.invalidateToken(oldToken);
      return null;
    }
    const record = rowToRecord(rotated.row, rotated.textLength);
    this.cache.refresh(record, now, epoch, token);
    // The caller's Session now stands for the rotated row and its new token; its unsaved changes stay pending.
    if (target instanceof Session) target._rebase(record, { keepPending: true, token });
    return { session: this.#wrap(record, token), token };
  }

  // ---- step-up -----------------------------------------------------------------------------------

  /**
   * Records that the session's user just proved who they are again (the app re-checked a password, a
   * passkey, a second factor): `authenticatedAt` becomes now, in one statement bound to the token the
   * session was loaded through (like `updateSession`: a Session loaded by a token rotated away since writes
   * nothing). The session is rebased on the row written (its unsaved attribute changes stay pending); every
   * cache holding it drops it (the version moves). Throws SessionNotFoundError when the session is gone,
   * expired, idle or past `reauthenticationPeriod` (such a session is not revived: sign in again).
   */
  async reauthenticate(session: Session<A>): Promise<Session<A>> {
    if (!(session instanceof Session)) throw new InvalidArgumentError('session', 'expected a Session from this library');
    const { record } = session._pending();
    if (record.impersonatedBy !== null) throw new ImpersonationError(record.id, record.impersonatedBy, 'step up (reauthenticate)');
    const now = this.#clock();
    const idle = this.config.inactivityDuration;
    const lastKnown = this.#touched.peek(record.id)?.at;
    const idleCutoff = idle === 0 || (lastKnown !== undefined && lastKnown + idle > now) ? null : now - idle;
    const token = session._token();
    const hash = await hashToken(token);
    const epoch = this.cache.begin();
    const written = await this.#store.reauthenticate({ id: record.id, hash, now, idleCutoff, reauthCutoff: this.#reauthCutoff(now) });
    if (written === undefined) {
      this.cache.invalidate([record.id]);
      throw new SessionNotFoundError(record.id);
    }
    const current = rowToRecord(written.row, written.textLength);
    this.cache.refresh(current, now, epoch, token);
    session._rebase(current, { keepPending: true });
    return session;
  }

  /**
   * Throws ReauthenticationRequiredError (with the session's `authenticatedAt`) unless its user proved who
   * they are at most `maxAge` ms ago. No I/O. The middleware's `requireFresh({ maxAge })` does this before a
   * handler runs.
   */
  assertFresh(session: Session<A>, maxAge: number): void {
    if (!(session instanceof Session)) throw new InvalidArgumentError('session', 'expected a Session from this library');
    if (!session.authenticatedWithin(maxAge)) throw new ReauthenticationRequiredError(session.id, session.authenticatedAt, maxAge);
  }

  /** Authenticated at or before this, a session is past its re-authentication period (null: no period). */
  #reauthCutoff(now: number): number | null {
    const period = this.config.reauthenticationPeriod;
    return period === 0 ? null : now - period;
  }

  #pastReauthentication(authenticatedAt: number, now: number): boolean {
    const period = this.config.reauthenticationPeriod;
    return period !== 0 && authenticatedAt + period <= now;
  }

  // ---- delete -----------------------------------------------------------------------------------

  /**
   * Deletes the session of a token or a Session (a Session deletes through its own token: one loaded by a
   * token rotated away since deletes nothing). Missing sessions are fine: returns whether one was deleted.
   */
  async deleteSession(target: string | Session<A>, options: DeleteSessionOptions = {}): Promise<boolean> {
    const reason = options.reason ?? 'logout';
    if (reason !== 'logout' && reason !== 'replaced') throw new InvalidArgumentError('reason', 'expected "logout" or "replaced"');
    const token = target instanceof Session ? target._token() : target;
    if (!isWellFormedToken(token)) return false;
    const ids = await this.#store.deleteByToken(
      await hashToken(token),
      target instanceof Session ? target.id : null,
      this.config.audit ? { reason, endedAt: this.#clock() } : undefined,
    );
    this.cache.invalidate(ids);
    if (target instanceof Session) this.cache.invalidate([target.id]);
    else this.cache.invalidateToken(token);
    return ids.length > 0;
  }

  /**
   * Deletes by internal id (as listed by listUserSessions), in one statement. With `{ userId }` only that
   * user's session is deleted (a "your devices" page: a session of another user is not found and nothing
   * is deleted). Returns whether one was deleted.
   */
  async deleteSessionById(id: string, options: DeleteSessionByIdOptions = {}): Promise<boolean> {
    if (!isUuid(id)) throw new InvalidArgumentError('id', 'expected a session id (UUID)');
    const owner = options.userId;
    if (owner !== undefined) checkUserId(owner, 'userId');
    const actor = checkActor(options.actor, owner === undefined ? ADMIN : USER);
    const ids = await this.#store.deleteWhere(
      'deleteSessionById',
      owner === undefined ? sql`id = ${id}::uuid` : sql`id = ${id}::uuid AND user_id = ${owner}`,
      this.#audit(owner === undefined ? 'admin_revoked' : 'revoked', actor),
    );
    this.cache.invalidate(ids);
    return ids.length > 0;
  }

  /** Deletes every session of a user (optionally but one). Returns how many. */
  async deleteAllUserSessions(userId: string, options: DeleteUserSessionsOptions = {}): Promise<number> {
    checkUserId(userId, 'userId');
    const except = options.exceptSessionId;
    if (except !== undefined && !isUuid(except)) throw new InvalidArgumentError('exceptSessionId', 'expected a session id (UUID)');
    const actor = checkActor(options.actor, except === undefined ? ADMIN : { kind: 'session', id: except.toLowerCase() });
    const ids = await this.#store.deleteWhere(
      'deleteAllUserSessions',
      except === undefined ? sql`user_id = ${userId}` : sql`user_id = ${userId} AND id <> ${except}::uuid`,
      this.#audit('user_sessions_deleted', actor),
    );
    this.cache.invalidate(ids);
    return ids.length;
  }

  /** Deletes every session of a group. Returns how many. */
  async deleteSessionsByGroup(groupId: string, options: BulkDeleteOptions = {}): Promise<number> {
    checkUserId(groupId, 'groupId');
    const actor = checkActor(options.actor, ADMIN);
    const ids = await this.#store.deleteWhere('deleteSessionsByGroup', sql`group_id = ${groupId}`, this.#audit('group_deleted', actor));
    this.cache.invalidate(ids);
    return ids.length;
  }

  /** Deletes every session in the store. Returns how many. */
  async deleteAllSessions(options: BulkDeleteOptions = {}): Promise<number> {
    const actor = checkActor(options.actor, ADMIN);
    const n = await this.#store.deleteAll(this.#audit('all_deleted', actor));
    this.cache.clear();
    return n;
  }

  /** The audit record a delete of this kind writes (undefined with `audit` off: nothing is written). */
  #audit(
    reason: SessionEndReason,
    actor: SessionEndActor,
  ): { reason: SessionEndReason; endedAt: number; actor: SessionEndActor } | undefined {
    return this.config.audit ? { reason, endedAt: this.#clock(), actor } : undefined;
  }

  /** Removes one attribute from every session of a user. Returns how many sessions changed. */
  async deleteAttributeFromAllUserSessions(userId: string, key: string): Promise<number> {
    checkUserId(userId, 'userId');
    validateKey(key);
    const ids = await this.#store.deleteAttributeForUser(userId, key, this.#clock());
    this.cache.invalidate(ids);
    return ids.length;
  }

  /**
   * The user's live sessions, most recently used first (by the newest known access): metadata and device
   * only, never tokens or attributes. `current` marks the caller's own session.
   */
  async listUserSessions(userId: string, options: ListUserSessionsOptions = {}): Promise<SessionInfo[]> {
    checkUserId(userId, 'userId');
    const given = options.current;
    const current = given !== null && typeof given === 'object' ? given.id : given;
    if (current !== undefined && !isUuid(current)) throw new InvalidArgumentError('current', 'expected a Session or a session id (UUID)');
    const now = this.#clock();
    const rows = await this.#store.listByUser(userId, now);
    const idle = this.config.inactivityDuration;
    const out: SessionInfo[] = [];
    for (const r of rows) {
      const last = this.#lastAccess({ id: r.id, lastAccessed: Number(r.last_accessed) });
      if (idle !== 0 && last + idle <= now) continue;
      const authenticatedAt = Number(r.authenticated_at ?? r.created_at);
      if (this.#pastReauthentication(authenticatedAt, now)) continue;
      out.push({
        id: r.id,
        userId: r.user_id,
        groupId: r.group_id,
        version: Number(r.version),
        createdAt: new Date(Number(r.created_at)),
        updatedAt: new Date(Number(r.updated_at)),
        lastAccessedAt: new Date(last),
        expiresAt: new Date(Number(r.expires_at)),
        authenticatedAt: new Date(authenticatedAt),
        impersonatedBy: r.impersonated_by ?? null,
        userAgent: r.user_agent ?? null,
        device: r.device ?? null,
        ip: r.ip ?? null,
        label: r.label ?? null,
        location: r.location == null ? null : (JSON.parse(r.location) as DeviceLocation),
        current: r.id === current?.toLowerCase(),
      });
    }
    // The database orders by the stored last access; touches not yet written can reorder (stable sort).
    return out.sort((a, b) => b.lastAccessedAt.getTime() - a.lastAccessedAt.getTime());
  }

  /**
   * The user's recorded session ends (the `audit` option), newest first: at most `limit` (default 50,
   * at most 1000), ended before `before` when given (to page back).
   */
  async listSessionEnds(userId: string, options: { limit?: number; before?: Date | number } = {}): Promise<SessionEndInfo[]> {
    checkUserId(userId, 'userId');
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new InvalidArgumentError('limit', 'expected an integer from 1 to 1000');
    const before = toMillis(options.before, 'before');
    return (await this.#store.listAudit(userId, limit, before)).map(toEndInfo);
  }

  /**
   * Why a session ended, by its id: its final end when recorded (a rotation only ended an old token), or
   * null when nothing is recorded (audit off, pruned, or still alive). Lets an app tell a signed-out
   * browser "revoked from another device" or "expired" (see the middleware's `endedReason()`).
   */
  async sessionEnd(sessionId: string): Promise<SessionEndInfo | null> {
    if (!isUuid(sessionId)) throw new InvalidArgumentError('sessionId', 'expected a session id (UUID)');
    const row = await this.#store.auditOf({ sessionId });
    return row === undefined ? null : toEndInfo(row);
  }

  /**
   * Why the session a token belonged to ended, told to the holder of that token: found through the check
   * of the token's hash that each audited end records (drizzle/0013), so nobody learns of a session they
   * cannot name by a token it had (the middleware's `ended()` uses it). Null when nothing is recorded for
   * it (audit off, pruned, ended before drizzle/0013, or never a session's token); a malformed token costs
   * no query.
   */
  async sessionEndOfToken(token: string): Promise<SessionEndInfo | null> {
    if (!isWellFormedToken(token)) return null;
    const row = await this.#store.auditOf({ tokenHash: await hashToken(token) });
    return row === undefined ? null : toEndInfo(row);
  }

  // ---- touches and cleanup ----------------------------------------------------------------------

  /**
   * Takes the pending touches out of the manager, e.g. to send them to the sync worker: per session
   * `[id, last, first]`, the newest and the oldest access (ms) since its touches were last taken. Give them
   * back with `restoreTouches` if sending fails.
   */
  takePendingTouches(): TouchEntry[] {
    const out: TouchEntry[] = [];
    for (const [id, t] of this.#pending) {
      out.push([id, t.at, t.first]);
      t.pending = false;
    }
    this.#pending = new Map();
    this.#pendingSince = Number.POSITIVE_INFINITY;
    return out;
  }

  /** Puts touches back (the run widens to cover them), e.g. after a failed send or flush. */
  restoreTouches(touches: Iterable<TouchEntry>): void {
    for (const [id, last, first] of touches) {
      if (typeof id !== 'string' || typeof last !== 'number') continue;
      const t = this.#known(id, undefined, last);
      if (last > t.at) t.at = last;
      this.#markPending(id, t, Math.min(first ?? last, last));
    }
  }

  /**
   * Writes pending touches in batches of lastAccessUpdateBatchSize, one statement each, with GREATEST so
   * last access never moves backwards. On failure the unwritten touches are kept and the error rethrown.
   * Concurrent calls share one flush.
   */
  flushTouches(): Promise<FlushResult> {
    if (this.#flushing === undefined) {
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined;
      });
    }
    return this.#flushing;
  }

  async #flush(): Promise<FlushResult> {
    const pending = this.takePendingTouches();
    const now = this.#clock();
    const idle = this.config.inactivityDuration === 0 ? null : this.config.inactivityDuration;
    const size = this.config.lastAccessUpdateBatchSize;
    let rows = 0;
    let batches = 0;
    for (let i = 0; i < pending.length; i += size) {
      try {
        rows += await this.#store.flushTouches(pending.slice(i, i + size), now, idle);
        batches++;
      } catch (e) {
        this.restoreTouches(pending.slice(i));
        throw e;
      }
    }
    return { rows, batches };
  }

  /**
   * Deletes expired sessions (absolute, and idle past inactivityDuration + lastAccessUpdateInterval, the
   * grace for touches not yet written anywhere; past reauthenticationPeriod) and expired attributes, in
   * short statements: each reads at most `batchSize` sessions (default lastAccessUpdateBatchSize) whose
   * cleanup deadline has passed, through an index (drizzle/0015, Store.cleanupDue), so a run costs what is
   * due, not the table's size. Between statements it pauses `pause` times as long as the statement took. By
   * default the multiple adapts to what other sessions of the database are doing: 30 while they run queries
   * (cleanup keeps about 3% of one database core busy, so request-path queries keep theirs), down to 1
   * while they are idle; a number fixes it (0 runs flat out). Flushes this manager's touches first. An
   * aborted `signal` ends it between two statements (what was done is reported). `onBatch` hears of each
   * statement: the rows it changed (kind 'attributes' when it only removed attributes). The worker
   * schedules it every cleanupInterval; call it yourself without one.
   */
  async deleteExpired(
    options: {
      batchSize?: number;
      pause?: number;
      signal?: AbortSignal;
      onBatch?: (kind: 'sessions' | 'attributes', rows: number, ms: number) => void;
    } = {},
  ): Promise<CleanupResult> {
    await this.flushTouches();
    const now = this.#clock();
    const size = options.batchSize ?? this.config.lastAccessUpdateBatchSize;
    if (!Number.isInteger(size) || size < 1) throw new InvalidArgumentError('batchSize', 'expected an integer ≥ 1');
    const fixed = options.pause;
    if (fixed !== undefined && (typeof fixed !== 'number' || !(fixed >= 0) || fixed === Number.POSITIVE_INFINITY)) {
      throw new InvalidArgumentError('pause', 'expected a finite number ≥ 0');
    }
    // Adaptive pace (see CLEANUP_PAUSE_MIN): starts gentle, as if the database were busy.
    let busy = 1;
    const idle = this.config.inactivityDuration;
    const idleCutoff = idle === 0 ? null : now - idle - this.config.lastAccessUpdateInterval;
    const counts = { sessions: 0, attributes: 0 };
    let batches = 0;
    const reauthCutoff = this.#reauthCutoff(now);
    // Sessions whose cleanup deadline has passed (drizzle/0015), then, with an idle timeout or a
    // re-authentication period, sessions given no deadline yet that are old enough to be due by either.
    const sources: ('due' | 'unset')[] = idleCutoff === null && reauthCutoff === null ? ['due'] : ['due', 'unset'];
    const unsetCutoff = Math.max(idleCutoff ?? Number.NEGATIVE_INFINITY, reauthCutoff ?? Number.NEGATIVE_INFINITY);
    for (const source of sources) {
      let more = true;
      while (more && options.signal?.aborted !== true) {
        const t0 = performance.now();
        const r = await this.#store.cleanupDue({
          source,
          now,
          idleCutoff,
          reauthCutoff,
          unsetCutoff,
          limit: size,
          audit:
            this.config.audit === true
              ? { idleMs: idle === 0 ? null : idle, reauthMs: this.config.reauthenticationPeriod || null }
              : undefined,
          ids: this.cache.enabled,
        });
        const ms = performance.now() - t0;
        batches++;
        counts.sessions += r.deleted;
        counts.attributes += r.attributes;
        if (r.ids.length > 0) this.cache.invalidate(r.ids);
        // One report per statement: the rows it changed, 'attributes' when it only removed attributes.
        options.onBatch?.(r.deleted === 0 && r.attributes > 0 ? 'attributes' : 'sessions', r.deleted + r.attributes, ms);
        // Every row picked is deleted or given a later deadline, so a full batch means there may be more;
        // fewer than the limit (locked rows are skipped) means the rest waits for the next run.
        more = r.picked >= size;
        // Any query seen running sets the full pause at once; it relaxes only as statements keep finding
        // the database otherwise idle (a fifth of the way per statement).
        busy = r.active > 0 ? 1 : busy * 0.8;
        const pause = fixed ?? CLEANUP_PAUSE_MIN + (CLEANUP_PAUSE_MAX - CLEANUP_PAUSE_MIN) * busy;
        if (pause > 0 && more) await sleep(ms * pause, options.signal);
      }
    }
    // Audit rows past their retention (also those written while `audit` was on, if it is off now).
    let audit = 0;
    const cutoff = now - this.config.auditRetention;
    while (options.signal?.aborted !== true) {
      const n = await this.#store.pruneAudit(cutoff, size);
      audit += n;
      if (n < size) break;
    }
    return { sessions: counts.sessions, attributes: counts.attributes, audit, batches };
  }

  /** Clears this manager's cache only. */
  clearCache(): void {
    this.cache.clear();
  }

  /**
   * Clears every cache that follows the change feed (every isolate, through the worker) and this one:
   * records a reset in the change record. One statement.
   */
  async clearAllCaches(): Promise<void> {
    await recordReset(this.#store.db, this.#store.names);
    this.cache.clear();
  }

  /**
   * For a manager running alone in a long-lived process: flushes touches every lastAccessUpdateInterval
   * and runs deleteExpired every cleanupInterval (timers are unref'd). Errors go to `onError`. Returns a
   * stop function. Don't use it next to the sync worker, which does both.
   */
  startBackgroundTasks(onError: (e: unknown) => void = () => {}): () => void {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(() => {
        fn().catch(onError);
      }, ms);
      (t as { unref?: () => void }).unref?.();
      this.#timers.push(t);
    };
    if (this.#touchWriter === 'self') {
      this.#touchWriter = 'tasks';
      this.#disarmFlushTimer();
    }
    every(this.config.lastAccessUpdateInterval, () => this.flushTouches());
    every(this.config.cleanupInterval, () => this.deleteExpired());
    return () => this.stopBackgroundTasks();
  }

  stopBackgroundTasks(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    if (this.#touchWriter === 'tasks') this.#touchWriter = 'self';
  }

  /** Stops background tasks and the flush timer and writes pending touches. */
  async close(): Promise<void> {
    this.stopBackgroundTasks();
    this.#disarmFlushTimer();
    await this.flushTouches();
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
    signal?.addEventListener('abort', done, { once: true });
  });
}

function toEndInfo(r: AuditRow): SessionEndInfo {
  return {
    sessionId: r.session_id,
    userId: r.user_id,
    groupId: r.group_id,
    reason: r.reason,
    actor: r.actor_kind === null ? null : ({ kind: r.actor_kind, id: r.actor_id } as SessionEndActor),
    impersonatedBy: r.impersonated_by ?? null,
    endedAt: new Date(Number(r.ended_at)),
    createdAt: new Date(Number(r.created_at)),
    lastAccessedAt: new Date(Number(r.last_accessed)),
    userAgent: r.user_agent,
    device: r.device,
    ip: r.ip,
    label: r.label,
  };
}

const ADMIN: SessionEndActor = { kind: 'admin', id: null };
const USER: SessionEndActor = { kind: 'user', id: null };

/** An app's actor for a delete, checked (a typed error, nothing written), or the default. */
function checkActor(actor: SessionEndActorInput | undefined, fallback: SessionEndActor): SessionEndActor {
  if (actor === undefined) return fallback;
  if (actor === null || typeof actor !== 'object')
    throw new InvalidArgumentError('actor', "expected { kind: 'user' | 'session' | 'admin', id? }");
  const id = (actor as { id?: unknown }).id;
  switch (actor.kind) {
    case 'user':
      if (id !== undefined && id !== null)
        throw new InvalidArgumentError('actor.id', "the user actor has no id (use { kind: 'session', id } for one of their sessions)");
      return USER;
    case 'session':
      if (!isUuid(id)) throw new InvalidArgumentError('actor.id', 'expected the id (UUID) of the session that ends them');
      return { kind: 'session', id: id.toLowerCase() };
    case 'admin':
      checkUserId(id, 'actor.id');
      return { kind: 'admin', id };
    default:
      throw new InvalidArgumentError('actor.kind', "expected 'user', 'session' or 'admin'");
  }
}

function checkUserId(v: unknown, name: string): asserts v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_USER_ID_LENGTH) {
    throw new InvalidArgumentError(name, `expected a non-empty string of at most ${MAX_USER_ID_LENGTH} characters`);
  }
  if (v.includes('\u0000') || !v.isWellFormed()) throw new InvalidArgumentError(name, 'must be well-formed Unicode without NUL characters');
}
