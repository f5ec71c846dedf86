/**
 * `c.var.session`'s contract: what a handler can ask of the request's session. Hono-free; implemented by
 * `RequestSession` (request-session.ts) and set by `sessionMiddleware` (session-middleware.ts).
 */
import type { CreateSessionOptions, UpdateSessionOptions } from '../core/manager.ts';
import type { Attributes, Session } from '../core/session.ts';
import type { SessionEndReason } from '../db/store.ts';

/** A sign-in from a device new for the user (`onNewDevice`). */
export interface NewDeviceEvent {
  userId: string;
  sessionId: string;
  /** The device label ("Firefox on Linux"), or null. */
  device: string | null;
  userAgent: string | null;
  ip: string | null;
  at: Date;
}

/** `c.var.session`: the request's session, loaded on first use. */
export interface SessionHandle<A extends Attributes = Attributes> {
  /**
   * The session named by the request's cookie, or null (no cookie, malformed cookie, unknown or expired
   * session). Loaded on the first call and cached for the request; after `login`/`rotate`/`destroy` it
   * returns the new state. Change it with `session.set`/`delete`: the changes are saved after the handler.
   *
   * Several cookies of the session's name (browsers send every cookie whose Domain and Path match, so a
   * stale one or one planted by a sibling subdomain can come along with the user's own):
   * - values that are not well-formed tokens are ignored (no query); at most 3 distinct well-formed
   *   values are looked up, one `getSession` each — more than 3 is a crafted header: no lookup, null;
   * - exactly one names a live session: that session, and no Set-Cookie;
   * - several name live sessions of one user: the most recently created one (then the smallest id);
   * - live sessions of different users: null for this request and no Set-Cookie. Choosing one could put
   *   the user in the attacker's session; clearing would delete the user's own cookie (a clearing
   *   Set-Cookie hits the cookie with this middleware's Path and Domain, not the planted one);
   * - none live: null, and the cookie is cleared as for a single dead cookie.
   * Every live session looked up is touched (its holder is active; a `touch` function gets only the one
   * used). A single cookie (the usual case) costs what it always did: one header scan, one `getSession`.
   */
  get(): Promise<Session<A> | null>;
  /** The session if `get()` already ran (no I/O): `undefined` when it has not been loaded. */
  peek(): Session<A> | null | undefined;
  /** Shorthand for `(await get())?.userId ?? null`. */
  userId(): Promise<string | null>;
  /** Shorthand for `(await get())?.get(key)`: undefined without a session. */
  getAttribute<K extends keyof A & string>(key: K): Promise<A[K] | undefined>;
  /**
   * Signs in: creates a session for `userId` and sets the cookie. Against session fixation, a new token
   * is always issued and the session the request's cookie named (if any) is deleted first — with several
   * cookies of the name, every session they name (the first 3 distinct well-formed values), so no planted
   * or stale duplicate survives to make the next request ambiguous; copy what you want to keep
   * (`(await get())?.toObject()`) into `attributes`. Records the request's device with the session: its
   * User-Agent and the client IP from the `clientIp` option (`options.device` overrides either or adds a
   * `label`). With `options.impersonatedBy` an administrator opens the session as the user (see
   * `CreateSessionOptions`); from an impersonation session that is an ImpersonationError, nothing deleted or
   * written. Returns the new session.
   */
  login(userId: string, attributes?: Partial<A>, options?: CreateSessionOptions): Promise<Session<A>>;
  /**
   * Whether this request's `login()` came from a device new for the user (checked when the middleware has
   * `onNewDevice`, or the login passed `checkNewDevice`); undefined when no such login ran in this request.
   */
  newDevice(): boolean | undefined;
  /**
   * Why the session this browser had ended, when the request's cookie names no live session any more and
   * the manager's `audit` option is on: `{ reason, endedAt }` (`'revoked'` from another device, `'expired'`,
   * `'idle_expired'`, `'logout'` elsewhere...), or null. Found from the dead cookie's own token (each
   * audited end records a check of its token's hash: `manager.sessionEndOfToken`), so only the browser that
   * held the session is told; one query per well-formed cookie value (usually one, at most 3), only when
   * called on such a request. Lets a sign-in page say "This session was revoked from another device"
   * instead of nothing.
   */
  ended(): Promise<{ reason: SessionEndReason; endedAt: Date } | null>;
  /**
   * Records that the user just proved who they are again (call it after re-checking a password, a passkey
   * or a second factor): the session's `authenticatedAt` becomes now, in one statement (see
   * `manager.reauthenticate`), so `requireFresh` lets it through. Unsaved attribute changes stay pending.
   * Returns the session, or null when there is none (or it ended meanwhile: the cookie is then cleared).
   * Consider `rotate()` too: a new token after a privilege change.
   */
  reauthenticated(): Promise<Session<A> | null>;
  /**
   * Issues a new token for the current session (same data, id and expiry) and sets the cookie; the old
   * token stops working at once (do it on privilege changes). Changes made in this request and not yet
   * saved are kept and saved after the handler. Returns the session, or null when there is none (the
   * cookie is then cleared).
   */
  rotate(): Promise<Session<A> | null>;
  /**
   * Signs out: deletes the session and clears the cookie. With several cookies of the name, deletes every
   * session they name (up to 3, as `login`), so none of them keeps the user signed in. Returns whether a
   * session was deleted.
   */
  destroy(): Promise<boolean>;
  /**
   * Saves pending attribute changes now (one statement) instead of after the handler, e.g. to catch a
   * `VersionConflictError` with `{ checkVersion: true }` or before streaming a long response. A no-op
   * without a session or without changes. When it throws, the handler has seen the failure and decides:
   * the changes are then not saved after the handler either.
   */
  save(options?: UpdateSessionOptions): Promise<void>;
}
