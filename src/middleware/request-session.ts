/**
 * The per-request session behind `c.var.session`, without Hono: like @hono/session's core, it is given the
 * session cookie as a small get/set/delete interface (`SessionCookieJar`) and the request's facts (its
 * device, where new-device sign-ins go), so another framework can drive it. `session-middleware.ts` is the
 * Hono wiring: it builds one per request, runs the handler, then calls `saveAfterHandler()` and `close()`.
 * The rules for duplicate cookies, sign-in and sign-out are documented on `SessionHandle` (session-handle.ts).
 */
import { type DeviceInfo, prepareDevice } from '../core/device.ts';
import { ImpersonationError, SessionError, SessionNotFoundError, SessionTooLargeError } from '../core/errors.ts';
import type { CreatedSession, CreateSessionOptions, SessionManager, UpdateSessionOptions } from '../core/manager.ts';
import type { Attributes, Session } from '../core/session.ts';
import { isWellFormedToken } from '../core/token.ts';
import type { SessionEndReason } from '../db/store.ts';
import type { NewDeviceEvent, SessionHandle } from './session-handle.ts';

/**
 * The request's session cookie, as the session sees it (cf. @hono/session's `cookie.get/set/delete`).
 * `get` returns every value of the cookie's name the request carried, in header order (a browser sends
 * each cookie whose Domain and Path match, so one name can come several times), raw, read at most once.
 */
export interface SessionCookieJar {
  get(): string[];
  /** Sends `token`; `expiresAt` (ms since the epoch) is the session's absolute expiry, for Max-Age. */
  set(token: string, expiresAt: number): void;
  /** Tells the browser to drop the cookie. */
  delete(): void;
}

/** What a request offers the session beyond its cookie: its device, and where new-device sign-ins go. */
export interface RequestFacts {
  /** The device `login()` records (User-Agent, client IP, location); `login`'s `options.device` overrides. */
  device(): DeviceInfo;
  /** When set, every login checks for a new device (`checkNewDevice`) and a new one is handed to it. */
  onNewDevice?: ((event: NewDeviceEvent) => void) | undefined;
}

export interface RequestSessionOptions<A extends Attributes> extends RequestFacts {
  manager: SessionManager<A>;
  cookie: SessionCookieJar;
  /** Reads record the access in the manager (`getSession(token, { touch })`). */
  touch: boolean;
  /** Awaited before the first lookup (the sync client's catch-up, when it is due). */
  beforeRead?: (() => Promise<void>) | undefined;
}

/**
 * At most this many distinct well-formed session cookie values are looked up in one request: a crafted
 * Cookie header with dozens of values costs no more than this many `getSession` calls.
 */
const MAX_COOKIE_CANDIDATES = 3;

/** The distinct well-formed values of duplicate cookies: at most MAX_COOKIE_CANDIDATES, and whether more were sent. */
function cookieCandidates(values: readonly string[]): { tokens: string[]; overflow: boolean } {
  const tokens = [...new Set(values.filter((v) => isWellFormedToken(v)))];
  return { tokens: tokens.slice(0, MAX_COOKIE_CANDIDATES), overflow: tokens.length > MAX_COOKIE_CANDIDATES };
}

/** Deterministic choice between live sessions of one user: the most recent sign-in, then the smaller id. */
function newer(a: { createdAt: Date; id: string }, b: { createdAt: Date; id: string }): boolean {
  const d = a.createdAt.getTime() - b.createdAt.getTime();
  return d > 0 || (d === 0 && a.id < b.id);
}

const CLEAR = Symbol('clear');

/** What the response must do with the cookie: nothing, clear it, or set a token. */
type CookieChange = undefined | typeof CLEAR | { token: string; expiresAt: number };

/**
 * One request's session state (`c.var.session` under the middleware). Knows nothing of Hono: it is given a
 * cookie jar and the request's facts, and after the handler it is asked to save and to write its cookie.
 */
export class RequestSession<A extends Attributes> implements SessionHandle<A> {
  readonly #manager: SessionManager<A>;
  readonly #jar: SessionCookieJar;
  readonly #touchInManager: boolean;
  readonly #beforeRead: (() => Promise<void>) | undefined;
  readonly #request: RequestFacts;
  /** Every value of the session cookie in the request, read on first use (usually zero or one). */
  #incoming: string[] | undefined;
  /** The token the loaded session was found by, when the request had several cookie values. */
  #loadedToken: string | undefined;
  /** login/destroy deleted the sessions the request's cookies name: not again in this request. */
  #cookieSessionsDeleted = false;
  /** In-flight or finished load; replaced by a settled promise after login/rotate/destroy. */
  #loading: Promise<Session<A> | null> | undefined;
  #session: Session<A> | null | undefined;
  /** The session as loaded from the cookie (the one a touch callback is about). */
  #loaded: Session<A> | null = null;
  #cookie: CookieChange;
  #closed = false;
  /** An explicit save() failed: the handler owns the outcome, the after-handler save stays out of it. */
  #saveFailed = false;
  #newDevice: boolean | undefined;

  constructor(options: RequestSessionOptions<A>) {
    this.#manager = options.manager;
    this.#jar = options.cookie;
    this.#touchInManager = options.touch;
    this.#beforeRead = options.beforeRead;
    this.#request = options;
  }

  #incomingValues(): string[] {
    this.#incoming ??= this.#jar.get();
    return this.#incoming;
  }

  /** Several values: a clearing Set-Cookie could hit a live one, so only the load may decide to clear. */
  #hasDuplicates(): boolean {
    return this.#incomingValues().length > 1;
  }

  get(): Promise<Session<A> | null> {
    this.#loading ??= this.#load();
    return this.#loading;
  }

  async #load(): Promise<Session<A> | null> {
    const values = this.#incomingValues();
    if (values.length === 0) {
      this.#session = null;
      return null;
    }
    // Keep the cache fresh from the worker's feed (inline only when it is older than maxStaleness).
    if (this.#beforeRead !== undefined) await this.#beforeRead();
    const session = values.length === 1 ? await this.#loadOne(values[0] as string) : await this.#loadAmong(values);
    this.#session = session;
    this.#loaded = session;
    return session;
  }

  /** The usual case, kept to one `getSession`. */
  async #loadOne(token: string): Promise<Session<A> | null> {
    // Malformed and forged tokens come back null without a query (manager.getSession checks the shape).
    const session = await this.#manager.getSession(token, { touch: this.#touchInManager });
    // The cookie names nothing alive: tell the browser to drop it (unless this request issues another).
    if (session === null) this.#cookie ??= CLEAR;
    return session;
  }

  /** Several cookies of the name (see SessionHandle.get for the rules and why). */
  async #loadAmong(values: readonly string[]): Promise<Session<A> | null> {
    const { tokens, overflow } = cookieCandidates(values);
    // More well-formed values than we look up: the user's own may be among the rest. Undecidable.
    if (overflow) return null;
    // Every live session the browser presented is touched, as one cookie's would be: the holder is active.
    // (In the ambiguous case that keeps a planted session alive too; its holder could do that anyway.)
    const found = await Promise.all(tokens.map((t) => this.#manager.getSession(t, { touch: this.#touchInManager })));
    let chosen: Session<A> | null = null;
    let chosenToken: string | undefined;
    for (const [i, session] of found.entries()) {
      if (session === null) continue;
      // Different users: using either could be the attacker's; clearing could delete the user's own.
      if (chosen !== null && session.userId !== chosen.userId) return null;
      if (chosen === null || newer(session, chosen)) {
        chosen = session;
        chosenToken = tokens[i];
      }
    }
    // Nothing in the header names a live session: clearing cannot hit a live cookie.
    if (chosen === null) {
      this.#cookie ??= CLEAR;
      return null;
    }
    this.#loadedToken = chosenToken;
    return chosen;
  }

  peek(): Session<A> | null | undefined {
    return this.#session;
  }

  async userId(): Promise<string | null> {
    return (await this.get())?.userId ?? null;
  }

  async getAttribute<K extends keyof A & string>(key: K): Promise<A[K] | undefined> {
    return (await this.get())?.get(key);
  }

  async login(userId: string, attributes?: Partial<A>, options?: CreateSessionOptions): Promise<Session<A>> {
    this.#assertOpen('login');
    await this.#settle();
    if (options?.impersonatedBy !== undefined) {
      // An impersonation cannot start another one (before anything is deleted or written).
      const current = this.#session === undefined ? await this.get() : this.#session;
      if (current?.impersonatedBy != null) throw new ImpersonationError(current.id, current.impersonatedBy, 'start another impersonation');
    }
    // One session to end (the usual case): in the create's own statement (one round trip); several: first.
    const targets = this.#currentTargets();
    const replaces = targets.length === 1 ? (targets[0] as string | Session<Attributes>) : undefined;
    if (replaces === undefined) {
      await this.#deleteTargets(targets, 'replaced');
      // The old sessions are gone from here on, whatever happens next.
      this.#endedByLogin();
    }
    const device: DeviceInfo = { ...this.#request.device(), ...options?.device };
    const hook = this.#request.onNewDevice;
    const checkNewDevice = options?.checkNewDevice ?? hook !== undefined;
    let created: CreatedSession<A>;
    try {
      created = await this.#manager.createSession(userId, attributes, {
        ...options,
        device,
        checkNewDevice,
        ...(replaces && { replaces }),
      });
    } catch (e) {
      // A failed statement ended nothing; one that refused the new session's size had ended the old one.
      if (replaces !== undefined && e instanceof SessionTooLargeError) this.#endedByLogin();
      throw e;
    }
    if (replaces !== undefined) this.#endedByLogin();
    const { session, token, newDevice } = created;
    this.#newDevice = newDevice;
    if (newDevice === true && hook !== undefined) {
      const listed = prepareDevice(device);
      hook({
        userId,
        sessionId: session.id,
        device: listed?.device ?? null,
        userAgent: listed?.userAgent ?? null,
        ip: listed?.ip ?? null,
        at: session.createdAt,
      });
    }
    this.#settleTo(session);
    this.#cookie = { token, expiresAt: session.expiresAt.getTime() };
    return session;
  }

  newDevice(): boolean | undefined {
    return this.#newDevice;
  }

  async ended(): Promise<{ reason: SessionEndReason; endedAt: Date } | null> {
    if (!this.#manager.config.audit || this.#incomingValues().length === 0) return null;
    if ((await this.get()) !== null) return null;
    // By what the browser holds, never by an id it names (an id is no credential).
    for (const token of cookieCandidates(this.#incomingValues()).tokens) {
      const end = await this.#manager.sessionEndOfToken(token);
      if (end !== null) return { reason: end.reason, endedAt: end.endedAt };
    }
    return null;
  }

  async reauthenticated(): Promise<Session<A> | null> {
    const session = await this.#current('reauthenticated');
    if (session === null) return null;
    try {
      return await this.#manager.reauthenticate(session);
    } catch (e) {
      if (!(e instanceof SessionNotFoundError)) throw e;
      return this.#gone();
    }
  }

  async rotate(): Promise<Session<A> | null> {
    const session = await this.#current('rotate');
    if (session === null) return null;
    // manager.rotate rebases the session on the rotated row and keeps its unsaved changes pending.
    const rotated = await this.#manager.rotate(session);
    if (rotated === null) return this.#gone();
    this.#cookie = { token: rotated.token, expiresAt: session.expiresAt.getTime() };
    return session;
  }

  async destroy(): Promise<boolean> {
    this.#assertOpen('destroy');
    await this.#settle();
    // If the delete fails, the cookie stays: the user can still sign out (retry) with it.
    const deleted = await this.#deleteCurrent('logout');
    this.#settleTo(null);
    // A session issued earlier in this request never reached the browser: nothing to clear then.
    this.#cookie = this.#incomingValues().length === 0 ? undefined : CLEAR;
    return deleted;
  }

  async save(options?: UpdateSessionOptions): Promise<void> {
    const session = this.#session;
    if (session === undefined || session === null || !session.isModified) return;
    try {
      await this.#manager.updateSession(session, options);
      this.#saveFailed = false;
    } catch (e) {
      this.#saveFailed = true;
      if (e instanceof SessionNotFoundError) {
        // Deleted or expired while the handler ran (signed out elsewhere): the cookie is dead too.
        this.#gone();
      }
      throw e;
    }
  }

  /**
   * Deletes the sessions this request holds: its current one (loaded, rotated or issued) and, once per
   * request, those its cookies name but it did not load — with duplicate cookies every candidate, a stale
   * or planted one included, so that none survives a sign-in or sign-out. deleteSession rejects a
   * malformed token without a query. Returns whether anything was deleted.
   */
  async #deleteCurrent(reason: 'logout' | 'replaced'): Promise<boolean> {
    return this.#deleteTargets(this.#currentTargets(), reason);
  }

  /** The sessions #deleteCurrent deletes: tokens, or Sessions (deleted through their own token). */
  #currentTargets(): Array<string | Session<A>> {
    const targets: Array<string | Session<A>> = [];
    if (this.#session) targets.push(this.#session);
    if (!this.#cookieSessionsDeleted) {
      const values = this.#incomingValues();
      // One value: once loaded (found or not), the current session above is all it names.
      if (values.length === 1 && this.#session === undefined) targets.push(values[0] as string);
      if (values.length > 1) {
        // The loaded one is deleted as a Session above (its token may have been rotated in this request).
        for (const t of cookieCandidates(values).tokens) if (!(this.#session && t === this.#loadedToken)) targets.push(t);
      }
    }
    return targets;
  }

  async #deleteTargets(targets: Array<string | Session<A>>, reason: 'logout' | 'replaced'): Promise<boolean> {
    const deleted = await Promise.all(targets.map((t) => this.#manager.deleteSession(t, { reason })));
    this.#cookieSessionsDeleted = true;
    return deleted.includes(true);
  }

  /** login() ended the sessions the request held: none is current, the cookie is cleared unless replaced. */
  #endedByLogin(): void {
    this.#cookieSessionsDeleted = true;
    this.#settleTo(null);
    this.#cookie = this.#incomingValues().length === 0 ? undefined : CLEAR;
  }

  /**
   * The session is gone (deleted or expired elsewhere): none for the rest of the request, and the request's
   * cookie names nothing alive any more, so tell the browser to drop it. Not when the request had several
   * values of the name that were not all deleted here: a clearing Set-Cookie hits the cookie with this
   * middleware's Path and Domain, which may be a live one this request did not use.
   */
  #gone(): null {
    this.#settleTo(null);
    if (!this.#hasDuplicates() || this.#cookieSessionsDeleted) this.#cookie = CLEAR;
    return null;
  }

  /** For a method that changes the session: the session it acts on, after a load in flight settled. */
  async #current(method: string): Promise<Session<A> | null> {
    this.#assertOpen(method);
    await this.#settle();
    return this.#session === undefined ? await this.get() : this.#session;
  }

  /** Waits for a load in flight so that its result cannot overwrite what a mutation sets. */
  async #settle(): Promise<void> {
    if (this.#loading !== undefined) await this.#loading.catch(() => undefined);
  }

  #settleTo(session: Session<A> | null): void {
    this.#session = session;
    this.#loading = Promise.resolve(session);
  }

  #assertOpen(method: string): void {
    if (this.#closed) {
      throw new SessionError(
        'INVALID_ARGUMENT',
        `c.var.session.${method}() was called after the session middleware finished: the response (and its cookie) is already sent`,
      );
    }
  }

  // ---- used by the middleware after the handler ----

  /** The save after a handler that did not throw. */
  async saveAfterHandler(): Promise<void> {
    if (!this.#saveFailed) await this.save();
  }

  /** No more login/rotate/destroy: the response's cookie is decided, and written through the jar. */
  close(): void {
    this.#closed = true;
    const change = this.#cookie;
    if (change === CLEAR) this.#jar.delete();
    else if (change !== undefined) this.#jar.set(change.token, change.expiresAt);
  }

  /** The session loaded from the cookie, if it is still this request's session (not destroyed/replaced). */
  loadedSession(): Session<A> | null {
    return this.#loaded !== null && this.#loaded === this.#session ? this.#loaded : null;
  }
}
