/** The option and result types of `SessionManager` (src/core/manager.ts, which re-exports them). */
import type { DeviceInfo } from './device.ts';
import type { Attributes, Session } from './session.ts';

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
  /**
   * The session this one replaces (a sign-in over an old cookie): its token, or the Session (deleted
   * through its own token). Deleted first, in the same statement as the create (one round trip), as
   * `deleteSession(replaces, { reason: 'replaced' })` would (its audit row: reason `replaced`, by its holder);
   * the user's count for `maxSessions` no longer includes it. A malformed token replaces nothing.
   */
  replaces?: string | Session<Attributes>;
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

export interface CreatedSession<A extends Attributes> {
  session: Session<A>;
  /** Give it to the client (the cookie); only its SHA-256 is stored. */
  token: string;
  /** With `checkNewDevice`: whether the device was new for the user. */
  newDevice?: boolean;
}
