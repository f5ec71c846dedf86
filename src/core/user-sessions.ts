/**
 * What `SessionManager` (src/core/manager.ts) does to a user's sessions by id, user or group, and what it
 * lists: deletes (one statement each, audited with the actor an app names), attribute removal, the user's
 * live sessions and the recorded session ends.
 */
import { sql } from 'drizzle-orm';
import type { SessionEndActor, SessionEndReason } from '../db/store.ts';
import { ADMIN, checkActor, checkUserId, USER } from './arguments.ts';
import { validateKey } from './attributes.ts';
import { InvalidArgumentError } from './errors.ts';
import { type SessionEndInfo, type SessionInfo, toEndInfo, toSessionInfo } from './listings.ts';
import type { BulkDeleteOptions, DeleteSessionByIdOptions, DeleteUserSessionsOptions, ListUserSessionsOptions } from './manager-types.ts';
import { toMillis } from './session.ts';
import { type ManagerParts, pastReauthentication } from './session-writes.ts';
import { hashToken, isUuid, isWellFormedToken } from './token.ts';

/** `SessionManager.deleteSessionById`: by internal id, optionally only the given user's. */
export async function deleteById(ctx: ManagerParts, id: string, options: DeleteSessionByIdOptions): Promise<boolean> {
  if (!isUuid(id)) throw new InvalidArgumentError('id', 'expected a session id (UUID)');
  const owner = options.userId;
  if (owner !== undefined) checkUserId(owner, 'userId');
  const actor = checkActor(options.actor, owner === undefined ? ADMIN : USER);
  const ids = await ctx.store.deleteWhere(
    'deleteSessionById',
    owner === undefined ? sql`id = ${id}::uuid` : sql`id = ${id}::uuid AND user_id = ${owner}`,
    auditOf(ctx, owner === undefined ? 'admin_revoked' : 'revoked', actor),
  );
  ctx.cache.invalidate(ids);
  return ids.length > 0;
}

/** `SessionManager.deleteAllUserSessions`: every session of a user (optionally but one). */
export async function deleteOfUser(ctx: ManagerParts, userId: string, options: DeleteUserSessionsOptions): Promise<number> {
  checkUserId(userId, 'userId');
  const except = options.exceptSessionId;
  if (except !== undefined && !isUuid(except)) throw new InvalidArgumentError('exceptSessionId', 'expected a session id (UUID)');
  const actor = checkActor(options.actor, except === undefined ? ADMIN : { kind: 'session', id: except.toLowerCase() });
  const ids = await ctx.store.deleteWhere(
    'deleteAllUserSessions',
    except === undefined ? sql`user_id = ${userId}` : sql`user_id = ${userId} AND id <> ${except}::uuid`,
    auditOf(ctx, 'user_sessions_deleted', actor),
  );
  ctx.cache.invalidate(ids);
  return ids.length;
}

/** `SessionManager.deleteSessionsByGroup`: every session of a group. */
export async function deleteOfGroup(ctx: ManagerParts, groupId: string, options: BulkDeleteOptions): Promise<number> {
  checkUserId(groupId, 'groupId');
  const actor = checkActor(options.actor, ADMIN);
  const ids = await ctx.store.deleteWhere('deleteSessionsByGroup', sql`group_id = ${groupId}`, auditOf(ctx, 'group_deleted', actor));
  ctx.cache.invalidate(ids);
  return ids.length;
}

/** `SessionManager.deleteAllSessions`: every session in the store. */
export async function deleteAll(ctx: ManagerParts, options: BulkDeleteOptions): Promise<number> {
  const actor = checkActor(options.actor, ADMIN);
  const n = await ctx.store.deleteAll(auditOf(ctx, 'all_deleted', actor));
  ctx.cache.clear();
  return n;
}

/** The audit record a delete of this kind writes (undefined with `audit` off: nothing is written). */
function auditOf(
  ctx: ManagerParts,
  reason: SessionEndReason,
  actor: SessionEndActor,
): { reason: SessionEndReason; endedAt: number; actor: SessionEndActor } | undefined {
  return ctx.config.audit ? { reason, endedAt: ctx.clock(), actor } : undefined;
}

/** `SessionManager.deleteAttributeFromAllUserSessions`: one attribute removed from every session of a user. */
export async function deleteAttributeOfUser(ctx: ManagerParts, userId: string, key: string): Promise<number> {
  checkUserId(userId, 'userId');
  validateKey(key);
  const ids = await ctx.store.deleteAttributeForUser(userId, key, ctx.clock());
  ctx.cache.invalidate(ids);
  return ids.length;
}

/** `SessionManager.listUserSessions`: the user's live sessions, most recently used first. */
export async function listOfUser(ctx: ManagerParts, userId: string, options: ListUserSessionsOptions): Promise<SessionInfo[]> {
  checkUserId(userId, 'userId');
  const given = options.current;
  const current = given !== null && typeof given === 'object' ? given.id : given;
  if (current !== undefined && !isUuid(current)) throw new InvalidArgumentError('current', 'expected a Session or a session id (UUID)');
  const currentId = current?.toLowerCase();
  const now = ctx.clock();
  const rows = await ctx.store.listByUser(userId, now);
  const idle = ctx.config.inactivityDuration;
  const out: SessionInfo[] = [];
  for (const r of rows) {
    const last = ctx.touches.lastAccess({ id: r.id, lastAccessed: Number(r.last_accessed) });
    if (idle !== 0 && last + idle <= now) continue;
    const authenticatedAt = Number(r.authenticated_at ?? r.created_at);
    if (pastReauthentication(ctx.config, authenticatedAt, now)) continue;
    out.push(toSessionInfo(r, last, authenticatedAt, currentId));
  }
  // The database orders by the stored last access; touches not yet written can reorder (stable sort).
  return out.sort((a, b) => b.lastAccessedAt.getTime() - a.lastAccessedAt.getTime());
}

/** `SessionManager.listSessionEnds`: the user's recorded session ends, newest first. */
export async function endsOfUser(
  ctx: ManagerParts,
  userId: string,
  options: { limit?: number; before?: Date | number },
): Promise<SessionEndInfo[]> {
  checkUserId(userId, 'userId');
  const limit = options.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidArgumentError('limit', 'expected an integer from 1 to 1000');
  const before = toMillis(options.before, 'before');
  return (await ctx.store.listAudit(userId, limit, before)).map(toEndInfo);
}

/** `SessionManager.sessionEnd`: why a session ended, by its id. */
export async function endOfSession(ctx: ManagerParts, sessionId: string): Promise<SessionEndInfo | null> {
  if (!isUuid(sessionId)) throw new InvalidArgumentError('sessionId', 'expected a session id (UUID)');
  const row = await ctx.store.auditOf({ sessionId });
  return row === undefined ? null : toEndInfo(row);
}

/** `SessionManager.sessionEndOfToken`: why the session a token belonged to ended (found by the token's hash check). */
export async function endOfToken(ctx: ManagerParts, token: string): Promise<SessionEndInfo | null> {
  if (!isWellFormedToken(token)) return null;
  const row = await ctx.store.auditOf({ tokenHash: await hashToken(token) });
  return row === undefined ? null : toEndInfo(row);
}
