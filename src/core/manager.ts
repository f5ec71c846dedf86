/**
 * `SessionManager`, the library's API: sessions created, read, written and ended, each in one statement.
 * The work beside it: src/core/session-writes.ts (one session's writes), src/core/user-sessions.ts (deletes
 * by id, user or group; listings), src/core/touches.ts (access bookkeeping), src/db/cleanup.ts (the paced
 * cleanup walk), src/core/manager-types.ts (option and result types, re-exported here).
 */
import { type CleanupResult, type CleanupRunOptions, deleteExpired } from '../db/cleanup.ts';
import type { SqlExecutor } from '../db/executor.ts';
import { recordReset } from '../db/feed.ts';
import { rowToRecord, type Store, type TouchEntry } from '../db/store.ts';
import type { CacheEntry, SessionCache, SessionRecord } from './cache.ts';
import type { ResolvedConfig, SessionConfig } from './config.ts';
import { InvalidArgumentError, ReauthenticationRequiredError } from './errors.ts';
import type { SessionEndInfo, SessionInfo } from './listings.ts';
import type {
  BulkDeleteOptions,
  CreatedSession,
  CreateSessionOptions,
  DeleteSessionByIdOptions,
  DeleteSessionOptions,
  DeleteUserSessionsOptions,
  GetSessionOptions,
  ListUserSessionsOptions,
  UpdateSessionOptions,
} from './manager-types.ts';
import { type Attributes, Session } from './session.ts';
import * as writes from './session-writes.ts';
import { hashToken, isWellFormedToken, TOKEN_LENGTH } from './token.ts';
import type { FlushResult, Touch, TouchTracker } from './touches.ts';
import * as users from './user-sessions.ts';

// Importers of src/core/manager.ts keep finding the manager's types and constants here.
export type { CleanupResult } from '../db/cleanup.ts';
export type { SessionEndInfo, SessionInfo } from './listings.ts';
export type * from './manager-types.ts';
export { type FlushResult, MAX_PENDING_TOUCHES } from './touches.ts';

/** Set by `_on` for the length of one constructor call: the parts the new manager shares. */
let sharing: writes.ManagerParts | undefined;

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
  readonly #clock: () => number;
  /** The access bookkeeping: newest known accesses, the touches not yet written, and who writes them. */
  readonly #touches: TouchTracker;
  /** What the operations beside the manager share (store, cache, config, clock, touches). */
  readonly #parts: writes.ManagerParts;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(db: SqlExecutor, config: SessionConfig = {}) {
    const shared = sharing;
    sharing = undefined;
    this.#parts = writes.managerParts(db, config, shared);
    this.config = this.#parts.config;
    this.cache = this.#parts.cache;
    this.#clock = this.#parts.clock;
    this.#touches = this.#parts.touches;
  }

  /**
   * @internal This manager with its statements on `db` (one request's connection, src/drivers/closing.ts):
   * the same cache, touches and config.
   */
  _on(db: SqlExecutor): SessionManager<A> {
    sharing = this.#parts;
    return new SessionManager<A>(db);
  }

  /** @internal The SQL layer (the sync client reads the change record through it). */
  get store(): Store {
    return this.#parts.store;
  }

  /** Quoted names of the tables this manager uses. */
  get names() {
    return this.#parts.store.names;
  }

  /** Touches recorded and not yet written. */
  get pendingTouchCount(): number {
    return this.#touches.pendingCount;
  }

  // ---- create / read ----------------------------------------------------------------------------

  /**
   * A new session for `userId` with `attributes`, in one statement, which also evicts the user's least
   * recently used sessions beyond maxSessions (see `CreateSessionOptions`). Returns the Session and its token.
   */
  createSession(userId: string, attributes: Partial<A> = {}, options: CreateSessionOptions = {}): Promise<CreatedSession<A>> {
    return writes.create<A>(this.#parts, userId, attributes, options);
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
    const read = await this.#parts.store.selectByTokenHash(await hashToken(token));
    if (read === undefined) return null;
    const record = rowToRecord(read.row, read.textLength);
    if (!this.#alive(record, now)) return null;
    this.cache.fill(token, record, readAt, epoch);
    return this.#serve(record, token, now, options.touch);
  }

  /**
   * A cache hit. The entry keeps the session's Touch (its `owner` slot), so recording the access is a few
   * field writes (TouchTracker.hit).
   */
  #serveCached(entry: CacheEntry, token: string, now: number, touch: boolean | undefined): Session<A> | null {
    const record = entry.record;
    const t = entry.owner as Touch | undefined;
    if (t === undefined || !t.live) {
      if (!this.#alive(record, now, t)) return null;
      if (touch !== false) entry.owner = this.#touches.touch(record, now, t);
      return writes.wrap<A>(this.#parts, record, token);
    }
    if (record.expiresAt <= now) return null;
    const idle = this.config.inactivityDuration;
    if (idle !== 0 && Math.max(t.at, record.lastAccessed) + idle <= now) return null;
    const reauth = this.config.reauthenticationPeriod;
    if (reauth !== 0 && record.authenticatedAt + reauth <= now) return null;
    if (touch !== false) this.#touches.hit(record.id, t, now);
    return writes.wrap<A>(this.#parts, record, token);
  }

  #serve(record: SessionRecord, token: string, now: number, touch: boolean | undefined): Session<A> | null {
    if (!this.#alive(record, now)) return null;
    if (touch !== false) this.#touches.touch(record, now);
    return writes.wrap<A>(this.#parts, record, token);
  }

  #alive(record: SessionRecord, now: number, held?: Touch): boolean {
    if (record.expiresAt <= now) return false;
    const reauth = this.config.reauthenticationPeriod;
    if (reauth !== 0 && record.authenticatedAt + reauth <= now) return false;
    const idle = this.config.inactivityDuration;
    return idle === 0 || this.#touches.lastAccess(record, held) + idle > now;
  }

  // ---- update, rotate, step-up --------------------------------------------------------------------

  /**
   * Stores the session's pending attribute changes in one statement and rebases the session on the row
   * written. Only changed and deleted keys are written. Throws SessionNotFoundError if the session is gone
   * or expired, VersionConflictError (nothing written) when a requested check fails.
   */
  updateSession(session: Session<A>, options: UpdateSessionOptions = {}): Promise<Session<A>> {
    return writes.update(this.#parts, session, options);
  }

  /**
   * Issues a new token for the same session (same id, data and expiry), atomically: the old token stops
   * working at commit, everywhere (its cache entries are invalidated like any change). Only the current
   * token rotates: a Session loaded through a token that was rotated away since cannot mint a new one.
   * Returns null when the token is malformed, unknown, rotated away or expired.
   */
  rotate(target: string | Session<A>): Promise<CreatedSession<A> | null> {
    return writes.rotate(this.#parts, target);
  }

  /**
   * Records that the session's user just proved who they are again (the app re-checked a password, a
   * passkey, a second factor): `authenticatedAt` becomes now, in one statement bound to the token the
   * session was loaded through (like `updateSession`: a Session loaded by a token rotated away since writes
   * nothing). The session is rebased on the row written (its unsaved attribute changes stay pending); every
   * cache holding it drops it (the version moves). Throws SessionNotFoundError when the session is gone,
   * expired, idle or past `reauthenticationPeriod` (such a session is not revived: sign in again).
   */
  reauthenticate(session: Session<A>): Promise<Session<A>> {
    return writes.reauthenticate(this.#parts, session);
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

  // ---- delete and list ----------------------------------------------------------------------------

  /**
   * Deletes the session of a token or a Session (a Session deletes through its own token: one loaded by a
   * token rotated away since deletes nothing). Missing sessions are fine: returns whether one was deleted.
   */
  deleteSession(target: string | Session<A>, options: DeleteSessionOptions = {}): Promise<boolean> {
    return writes.deleteByToken(this.#parts, target, options);
  }

  /**
   * Deletes by internal id (as listed by listUserSessions), in one statement. With `{ userId }` only that
   * user's session is deleted (a "your devices" page: a session of another user is not found and nothing
   * is deleted). Returns whether one was deleted.
   */
  deleteSessionById(id: string, options: DeleteSessionByIdOptions = {}): Promise<boolean> {
    return users.deleteById(this.#parts, id, options);
  }

  /** Deletes every session of a user (optionally but one). Returns how many. */
  deleteAllUserSessions(userId: string, options: DeleteUserSessionsOptions = {}): Promise<number> {
    return users.deleteOfUser(this.#parts, userId, options);
  }

  /** Deletes every session of a group. Returns how many. */
  deleteSessionsByGroup(groupId: string, options: BulkDeleteOptions = {}): Promise<number> {
    return users.deleteOfGroup(this.#parts, groupId, options);
  }

  /** Deletes every session in the store. Returns how many. */
  deleteAllSessions(options: BulkDeleteOptions = {}): Promise<number> {
    return users.deleteAll(this.#parts, options);
  }

  /** Removes one attribute from every session of a user. Returns how many sessions changed. */
  deleteAttributeFromAllUserSessions(userId: string, key: string): Promise<number> {
    return users.deleteAttributeOfUser(this.#parts, userId, key);
  }

  /**
   * The user's live sessions, most recently used first (by the newest known access): metadata and device
   * only, never tokens or attributes. `current` marks the caller's own session.
   */
  listUserSessions(userId: string, options: ListUserSessionsOptions = {}): Promise<SessionInfo[]> {
    return users.listOfUser(this.#parts, userId, options);
  }

  /**
   * The user's recorded session ends (the `audit` option), newest first: at most `limit` (default 50,
   * at most 1000), ended before `before` when given (to page back).
   */
  listSessionEnds(userId: string, options: { limit?: number; before?: Date | number } = {}): Promise<SessionEndInfo[]> {
    return users.endsOfUser(this.#parts, userId, options);
  }

  /**
   * Why a session ended, by its id: its final end when recorded (a rotation only ended an old token), or
   * null when nothing is recorded (audit off, pruned, or still alive). Lets an app tell a signed-out
   * browser "revoked from another device" or "expired" (see the middleware's `endedReason()`).
   */
  sessionEnd(sessionId: string): Promise<SessionEndInfo | null> {
    return users.endOfSession(this.#parts, sessionId);
  }

  /**
   * Why the session a token belonged to ended, told to the holder of that token: found through the check
   * of the token's hash that each audited end records (drizzle/0013), so nobody learns of a session they
   * cannot name by a token it had (the middleware's `ended()` uses it). Null when nothing is recorded for
   * it (audit off, pruned, ended before drizzle/0013, or never a session's token); a malformed token costs
   * no query.
   */
  sessionEndOfToken(token: string): Promise<SessionEndInfo | null> {
    return users.endOfToken(this.#parts, token);
  }

  // ---- touches and cleanup ----------------------------------------------------------------------

  /**
   * Takes the pending touches out of the manager, e.g. to send them to the sync worker: per session
   * `[id, last, first]`, the newest and the oldest access (ms) since its touches were last taken. Give them
   * back with `restoreTouches` if sending fails.
   */
  takePendingTouches(): TouchEntry[] {
    return this.#touches.take();
  }

  /** Puts touches back (the run widens to cover them), e.g. after a failed send or flush. */
  restoreTouches(touches: Iterable<TouchEntry>): void {
    this.#touches.restore(touches);
  }

  /**
   * Writes pending touches in batches of lastAccessUpdateBatchSize, one statement each, with GREATEST so
   * last access never moves backwards. On failure the unwritten touches are kept and the error rethrown.
   * Concurrent calls share one flush.
   */
  flushTouches(): Promise<FlushResult> {
    return this.#touches.flush();
  }

  /**
   * The flush of touches when one is due: this manager writes its own touches (no SyncClient, no
   * startBackgroundTasks) and the oldest pending one is lastAccessUpdateInterval old. Undefined otherwise.
   * sessionMiddleware calls it after each response and hands the flush to `waitUntil` (Workers) or lets it
   * run in the background (Node); a read never waits for it.
   */
  flushTouchesIfDue(): Promise<FlushResult> | undefined {
    return this.#touches.flushIfDue();
  }

  /**
   * @internal Called by the SyncClient made for this manager: touches go to the sync host from now on, so
   * this manager no longer writes them on its own.
   */
  _touchesTakenBySync(): void {
    this.#touches.takenBySync();
  }

  /** @internal Called by sessionMiddleware: it runs `flushTouchesIfDue()` after its responses. */
  _flushedAfterResponses(): void {
    this.#touches.flushedAfterResponses();
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
  async deleteExpired(options: CleanupRunOptions = {}): Promise<CleanupResult> {
    await this.flushTouches();
    const cache = this.cache;
    const onChanged = cache.enabled ? (ids: string[]) => cache.invalidate(ids) : undefined;
    return deleteExpired(this.#parts.store, this.config, this.#clock(), options, onChanged);
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
    await recordReset(this.#parts.store.db, this.#parts.store.names);
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
    this.#touches.writtenByTasks();
    every(this.config.lastAccessUpdateInterval, () => this.flushTouches());
    every(this.config.cleanupInterval, () => this.deleteExpired());
    return () => this.stopBackgroundTasks();
  }

  stopBackgroundTasks(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#touches.tasksStopped();
  }

  /** Stops background tasks and the flush timer and writes pending touches. */
  async close(): Promise<void> {
    this.stopBackgroundTasks();
    this.#touches.disarm();
    await this.flushTouches();
  }
}
