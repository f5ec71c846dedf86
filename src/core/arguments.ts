/**
 * The checks `SessionManager` (src/core/manager.ts) makes of its arguments before any I/O: a bad argument is
 * a typed error and nothing is written.
 */
import type { SessionEndActor } from '../db/store.ts';
import { prepareValue, validateKey } from './attributes.ts';
import { InvalidArgumentError, SessionTooLargeError } from './errors.ts';
import type { SessionEndActorInput } from './manager-types.ts';
import { toMillis } from './session.ts';
import { isUuid } from './token.ts';

const MAX_USER_ID_LENGTH = 512;

export const ADMIN: SessionEndActor = { kind: 'admin', id: null };
export const USER: SessionEndActor = { kind: 'user', id: null };

/** A user id, group id or administrator id: a non-empty string of at most 512 characters, storable as text. */
export function checkUserId(v: unknown, name: string): asserts v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_USER_ID_LENGTH) {
    throw new InvalidArgumentError(name, `expected a non-empty string of at most ${MAX_USER_ID_LENGTH} characters`);
  }
  if (v.includes('\u0000') || !v.isWellFormed()) throw new InvalidArgumentError(name, 'must be well-formed Unicode without NUL characters');
}

/** An app's actor for a delete, checked (a typed error, nothing written), or the default. */
export function checkActor(actor: SessionEndActorInput | undefined, fallback: SessionEndActor): SessionEndActor {
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

/**
 * A new session's absolute expiry: the one asked for, else now + `sessionExpiration`; an impersonation
 * (`impersonating`) lives at most `impersonationMaxLifetime`. It must lie in the future.
 */
export function newSessionExpiry(
  asked: number | Date | undefined,
  now: number,
  impersonating: boolean,
  c: { sessionExpiration: number; impersonationMaxLifetime: number },
): number {
  const longest = impersonating ? now + c.impersonationMaxLifetime : Number.POSITIVE_INFINITY;
  const expiresAt = toMillis(asked) ?? Math.min(now + c.sessionExpiration, longest);
  if (expiresAt <= now) throw new InvalidArgumentError('expiresAt', 'must be in the future');
  if (expiresAt > longest) {
    throw new InvalidArgumentError(
      'expiresAt',
      `an impersonation lives at most impersonationMaxLifetime (${c.impersonationMaxLifetime} ms)`,
    );
  }
  return expiresAt;
}

const encoder = new TextEncoder();

/**
 * A new session's attributes: each name and value checked (values at most `maxAttributeLength`), as the
 * stored JSON (version 1 each, no expiry) and the records a cache entry holds. Larger than `maxSessionBytes`
 * is a SessionTooLargeError.
 */
export function newSessionAttributes(
  attributes: object,
  maxAttributeLength: number,
  maxSessionBytes: number,
): { json: string; records: Map<string, { value: unknown; version: number; expiresAt: number | null }> } {
  const parts: string[] = [];
  const records = new Map<string, { value: unknown; version: number; expiresAt: number | null }>();
  for (const key of Object.keys(attributes)) {
    validateKey(key);
    const value = (attributes as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const { json, frozen } = prepareValue(key, value, maxAttributeLength);
    parts.push(`${JSON.stringify(key)}:{"v":${json},"ver":1}`);
    records.set(key, { value: frozen, version: 1, expiresAt: null });
  }
  const json = `{${parts.join(',')}}`;
  // PostgreSQL prints jsonb with more spaces than JSON.stringify: too large here is too large there.
  if (json.length > maxSessionBytes) {
    const size = encoder.encode(json).length;
    if (size > maxSessionBytes) throw new SessionTooLargeError(size, maxSessionBytes);
  }
  return { json, records };
}
