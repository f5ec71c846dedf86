/**
 * What the manager lists: a user's live sessions (`listUserSessions`) and recorded session ends
 * (`listSessionEnds`, `sessionEnd`), built from the store's rows. Never a token, a token hash or attributes.
 */
import type { AuditRow, SessionEndActor, SessionEndReason, SessionRow } from '../db/store.ts';
import type { DeviceLocation } from './device.ts';

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
  /** Where the session's client was at sign-in (as `SessionInfo.location`); null when unknown or recorded before drizzle/0017. */
  location: DeviceLocation | null;
}

/** A recorded end as `listSessionEnds` and `sessionEnd` give it. */
export function toEndInfo(r: AuditRow): SessionEndInfo {
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
    location: parseLocation(r.location),
  };
}

/** A stored location (jsonb read as text), or null. */
function parseLocation(text: string | null | undefined): DeviceLocation | null {
  return text == null ? null : (JSON.parse(text) as DeviceLocation);
}

/**
 * A listed session: `last` is its newest known access (touches not yet written included), `authenticatedAt`
 * when its user last proved who they are, `current` the id of the caller's own session (lower case) if given.
 */
export function toSessionInfo(r: SessionRow, last: number, authenticatedAt: number, current: string | undefined): SessionInfo {
  return {
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
    location: parseLocation(r.location),
    current: r.id === current,
  };
}
