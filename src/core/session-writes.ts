/**
 * The writes of one session that `SessionManager` (src/core/manager.ts) makes: create, and the writes bound
 * to the token a Session was loaded through (update, rotate, reauthenticate, delete). Each is one statement;
 * each keeps the manager's cache right (see src/core/cache.ts: `begin` before the statement, then `fill`,
 * `refresh` or `invalidate`).
 */
import type { SqlExecutor } from '../db/executor.ts';
import { objectNames } from '../db/names.ts';
import { rowToRecord, Store } from '../db/store.ts';
import { checkUserId, newSessionAttributes, newSessionExpiry } from './arguments.ts';
import { recordWeight, SessionCache, type SessionRecord } from './cache.ts';
import { type ResolvedConfig, resolveConfig, type SessionConfig } from './config.ts';
import { prepareDevice } from './device.ts';
import { ImpersonationError, InvalidArgumentError, SessionNotFoundError, SessionTooLargeError, VersionConflictError } from './errors.ts';
import type { CreatedSession, CreateSessionOptions, DeleteSessionOptions, UpdateSessionOptions } from './manager-types.ts';
import { type Attributes, Session } from './session.ts';
import { generateToken, hashToken, isWellFormedToken } from './token.ts';
import { TouchTracker } from './touches.ts';

/**
 * @internal What a manager's operations share (here and in src/core/user-sessions.ts): its
 * store, cache, config, clock and access bookkeeping. One per SessionManager.
 */
export interface ManagerParts {
  readonly store: Store;
  readonly cache: SessionCache;
  readonly config: Readonly<ResolvedConfig>;
  readonly clock: () => number;
  readonly touches: TouchTracker;
}

/**
 * @internal A manager's parts: its store on `db`, and a new cache, touch bookkeeping and resolved config;
 * or those of `shared` (another manager's, `SessionManager._on`: the same manager on another connection).
 */
export function managerParts(db: SqlExecutor, config: SessionConfig, shared?: ManagerParts): ManagerParts {
  const resolved = shared?.config ?? Object.freeze(resolveConfig(config));
  if (db === null || typeof db !== 'object' || typeof (db as { execute?: unknown }).execute !== 'function') {
    throw new InvalidArgumentError('db', 'expected a Drizzle PostgreSQL database (drizzle(...) from any drizzle-orm pg driver)');
  }
  const names = shared?.store.names ?? objectNames(resolved.schemaName, resolved.tablePrefix);
  const store = new Store(db, names, { maxPerUser: resolved.auditMaxPerUser, onFailure: resolved.onAuditError });
  if (shared !== undefined) return { ...shared, store };
  const touches = new TouchTracker({
    clock: resolved.clock,
    max: Math.max(1000, resolved.cacheSize * 2),
    interval: resolved.lastAccessUpdateInterval,
    batchSize: resolved.lastAccessUpdateBatchSize,
    inactivityDuration: resolved.inactivityDuration,
    write: (batch, now, idleMs) => store.flushTouches(batch, now, idleMs),
  });
  const cache = new SessionCache(resolved.cacheSize, resolved.cacheMaxBytes);
  return { store, cache, config: resolved, clock: resolved.clock, touches };
}

/** The Session object handed out for a record and the token it was reached through. */
export function wrap<A extends Attributes>(ctx: ManagerParts, record: SessionRecord, token: string): Session<A> {
  return new Session<A>(record, token, ctx.clock, ctx.config.maxAttributeLength);
}

/**
 * What the statements bound to a token (the store's rotate and reauthenticate) check of the session's life at
 * `now`: last accessed before `idleCutoff` it is idle, authenticated at or before `reauthCutoff` it is past its
 * re-authentication period (null: no such check). The idle check counts the newest touch this manager knows
 * of for `knownId` (as getSession does).
 */
function liveAt(ctx: ManagerParts, knownId: string | undefined, now: number) {
  const idle = ctx.config.inactivityDuration;
  const lastKnown = knownId === undefined ? undefined : ctx.touches.latest(knownId);
  const idleCutoff = idle === 0 || (lastKnown !== undefined && lastKnown + idle > now) ? null : now - idle;
  const period = ctx.config.reauthenticationPeriod;
  return { now, idleCutoff, reauthCutoff: period === 0 ? null : now - period };
}

/** Whether a session authenticated then is past its re-authentication period. */
export function pastReauthentication(config: Readonly<ResolvedConfig>, authenticatedAt: number, now: number): boolean {
  const period = config.reauthenticationPeriod;
  return period !== 0 && authenticatedAt + period <= now;
}

/** `SessionManager.createSession`: checked arguments, then one statement (which also evicts past maxSessions). */
export async function create<A extends Attributes>(
  ctx: ManagerParts,
  userId: string,
  attributes: Partial<A>,
  options: CreateSessionOptions,
): Promise<CreatedSession<A>> {
  checkUserId(userId, 'userId');
  const groupId = options.groupId ?? null;
  if (groupId !== null) checkUserId(groupId, 'groupId');
  if (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes)) {
    throw new InvalidArgumentError('attributes', 'expected a plain object of attribute values');
  }
  const device = prepareDevice(options.device);
  const impersonatedBy = options.impersonatedBy ?? null;
  if (impersonatedBy !== null) checkUserId(impersonatedBy, 'impersonatedBy');
  const now = ctx.clock();
  const expiresAt = newSessionExpiry(options.expiresAt, now, impersonatedBy !== null, ctx.config);
  const maxBytes = ctx.config.maxSessionBytes;
  const { json: attributesJson, records } = newSessionAttributes(attributes, ctx.config.maxAttributeLength, maxBytes);
  const token = generateToken();
  const hash = await hashToken(token);
  const id = crypto.randomUUID();
  const old = options.replaces;
  const oldToken = old instanceof Session ? old._token() : old;
  const replaces =
    oldToken !== undefined && isWellFormedToken(oldToken)
      ? { hash: await hashToken(oldToken), id: old instanceof Session ? old.id : null }
      : undefined;
  const epoch = ctx.cache.begin();
  const created = await ctx.store.create({
    id,
    hash,
    userId,
    groupId,
    attributesJson,
    now,
    expiresAt,
    maxSessions: ctx.config.maxSessions,
    maxBytes,
    known: ctx.touches.knownAccesses(userId),
    device,
    audit: ctx.config.audit,
    impersonatedBy,
    checkNewDevice: options.checkNewDevice === true && impersonatedBy === null,
    replaces,
  });
  if (created.replaced !== undefined) {
    // As deleteByToken: the ids deleted, and the old token wherever this cache holds it.
    ctx.cache.invalidate(created.replaced);
    if (old instanceof Session) ctx.cache.invalidate([old.id]);
    else if (oldToken !== undefined) ctx.cache.invalidateToken(oldToken);
  }
  if ('tooLarge' in created) throw new SessionTooLargeError(created.tooLarge, maxBytes);
  if (created.evicted.length > 0) ctx.cache.invalidate(created.evicted);
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
  ctx.cache.fill(token, record, now, epoch);
  const session = wrap<A>(ctx, record, token);
  if (options.checkNewDevice === true) return { session, token, newDevice: created.newDevice === true };
  return { session, token };
}

/** `SessionManager.updateSession`: the pending changes in one statement bound to the session's token. */
export async function update<A extends Attributes>(
  ctx: ManagerParts,
  session: Session<A>,
  options: UpdateSessionOptions,
): Promise<Session<A>> {
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
  const now = ctx.clock();
  if (pastReauthentication(ctx.config, record.authenticatedAt, now)) {
    ctx.cache.invalidate([record.id]);
    throw new SessionNotFoundError(record.id);
  }
  const token = session._token();
  const hash = await hashToken(token);
  const epoch = ctx.cache.begin();
  const result = await ctx.store.update({
    id: record.id,
    hash,
    changesJson: `{${parts.join(',')}}`,
    deletedJson: JSON.stringify([...deleted]),
    now,
    expectVersion: options.checkVersion === true ? record.version : null,
    expectAttributeVersions,
    maxBytes: ctx.config.maxSessionBytes,
  });
  // No session carries this id and token any more: deleted, or its token rotated away. Nothing written.
  if (result === undefined) {
    ctx.cache.invalidate([record.id]);
    throw new SessionNotFoundError(record.id);
  }
  const current = rowToRecord(result.row, result.textLength);
  if (!result.updated) {
    const checked = options.checkVersion === true || options.checkAttributeVersion === true;
    if (result.reason === 'too_large') throw new SessionTooLargeError(Number(result.size), ctx.config.maxSessionBytes);
    if (result.reason === 'expired' || current.expiresAt <= now || !checked) {
      ctx.cache.invalidate([record.id]);
      throw new SessionNotFoundError(record.id);
    }
    const conflicting = [...changes.keys(), ...deleted].filter(
      (k) => (current.attributes.get(k)?.version ?? 0) !== (record.attributes.get(k)?.version ?? 0),
    );
    // The statement matched the row by this token's hash: the token is current, the row may be cached.
    ctx.cache.refresh(current, now, epoch, token);
    throw new VersionConflictError(record.id, record.version, current.version, conflicting);
  }
  ctx.cache.refresh(current, now, epoch, token);
  session._rebase(current);
  return session;
}

/** `SessionManager.rotate`: a new token for the same session, the old one dead at commit. */
export async function rotate<A extends Attributes>(ctx: ManagerParts, target: string | Session<A>): Promise<CreatedSession<A> | null> {
  const oldToken = target instanceof Session ? target._token() : target;
  if (!isWellFormedToken(oldToken)) return null;
  const hash = await hashToken(oldToken);
  const token = generateToken();
  const newHash = await hashToken(token);
  const now = ctx.clock();
  // For a token, the cache knows its session id if this manager read it (which is when it recorded a touch).
  const live = liveAt(ctx, target instanceof Session ? target.id : ctx.cache.idOf(oldToken), now);
  const epoch = ctx.cache.begin();
  const rotated = await ctx.store.rotate({ hash, newHash, ...live, audit: ctx.config.audit });
  if (rotated === undefined) {
    if (target instanceof Session) ctx.cache.invalidate([target.id]);
    else ctx.cache.invalidateToken(oldToken);
    return null;
  }
  const record = rowToRecord(rotated.row, rotated.textLength);
  ctx.cache.refresh(record, now, epoch, token);
  // The caller's Session now stands for the rotated row and its new token; its unsaved changes stay pending.
  if (target instanceof Session) target._rebase(record, { keepPending: true, token });
  return { session: wrap<A>(ctx, record, token), token };
}

/** `SessionManager.reauthenticate`: `authenticatedAt` becomes now, bound to the session's token. */
export async function reauthenticate<A extends Attributes>(ctx: ManagerParts, session: Session<A>): Promise<Session<A>> {
  if (!(session instanceof Session)) throw new InvalidArgumentError('session', 'expected a Session from this library');
  const { record } = session._pending();
  if (record.impersonatedBy !== null) throw new ImpersonationError(record.id, record.impersonatedBy, 'step up (reauthenticate)');
  const now = ctx.clock();
  const live = liveAt(ctx, record.id, now);
  const token = session._token();
  const hash = await hashToken(token);
  const epoch = ctx.cache.begin();
  const written = await ctx.store.reauthenticate({ id: record.id, hash, ...live });
  if (written === undefined) {
    ctx.cache.invalidate([record.id]);
    throw new SessionNotFoundError(record.id);
  }
  const current = rowToRecord(written.row, written.textLength);
  ctx.cache.refresh(current, now, epoch, token);
  session._rebase(current, { keepPending: true });
  return session;
}

/** `SessionManager.deleteSession`: through the token (a Session's own). */
export async function deleteByToken<A extends Attributes>(
  ctx: ManagerParts,
  target: string | Session<A>,
  options: DeleteSessionOptions,
): Promise<boolean> {
  const reason = options.reason ?? 'logout';
  if (reason !== 'logout' && reason !== 'replaced') throw new InvalidArgumentError('reason', 'expected "logout" or "replaced"');
  const token = target instanceof Session ? target._token() : target;
  if (!isWellFormedToken(token)) return false;
  const ids = await ctx.store.deleteByToken(
    await hashToken(token),
    target instanceof Session ? target.id : null,
    ctx.config.audit ? { reason, endedAt: ctx.clock() } : undefined,
  );
  ctx.cache.invalidate(ids);
  if (target instanceof Session) ctx.cache.invalidate([target.id]);
  else ctx.cache.invalidateToken(token);
  return ids.length > 0;
}
