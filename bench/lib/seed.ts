// Test data of the same shape and size for us and for the peer, and bulk loaders for both tables.
import { createHash, randomBytes } from 'node:crypto';
import type { SessionData } from 'express-session';
import type pg from 'pg';
import { generateToken } from '../../src/core/token.ts';

const DAY = 86_400_000;

/** What an app keeps in a session; both stores hold these (the peer also holds its cookie object). */
export const APP_ATTRIBUTES = Object.freeze({ theme: 'dark', locale: 'en-US', cartId: 'cart-000123', roles: ['user'] });

/** APP_ATTRIBUTES as our `attributes` column stores them. */
export const STORED_ATTRIBUTES_JSON = JSON.stringify(
  Object.fromEntries(Object.entries(APP_ATTRIBUTES).map(([k, v]) => [k, { v, ver: 1 }])),
);

/** What express-session hands its store for a session holding APP_ATTRIBUTES. */
export function peerSession(userId: string, expiresAt: number = Date.now() + 30 * DAY): SessionData {
  return {
    cookie: { originalMaxAge: 30 * DAY, expires: new Date(expiresAt), secure: true, httpOnly: true, path: '/', sameSite: 'lax' },
    userId,
    ...APP_ATTRIBUTES,
  } as unknown as SessionData;
}

/** A session id as express-session makes them (uid-safe, 24 bytes). */
export function peerSid(): string {
  return randomBytes(24).toString('base64url');
}

export type RowState = 'live' | 'expired';

function times(state: RowState, now: number) {
  // Expired rows are past both their absolute expiry and the idle timeout.
  return state === 'live'
    ? { created: now, last: now, expires: now + 30 * DAY }
    : { created: now - 40 * DAY, last: now - 35 * DAY, expires: now - DAY };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Inserts `count` sessions into our table with tokens the caller keeps (returned). */
export async function seedOursWithTokens(
  admin: pg.Pool,
  table: string,
  count: number,
  state: RowState = 'live',
  userPrefix = 'u',
): Promise<string[]> {
  const tokens = Array.from({ length: count }, () => generateToken());
  const t = times(state, Date.now());
  for (let i = 0; i < count; i += 5000) {
    const chunk = tokens.slice(i, i + 5000);
    await admin.query(
      `INSERT INTO ${table} (id, token_hash, user_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
       SELECT gen_random_uuid(), decode(h, 'hex'), $2 || (ord + $3), $4::jsonb, 1, $5, $5, $6, $7
       FROM unnest($1::text[]) WITH ORDINALITY AS x(h, ord)`,
      [
        chunk.map((tk) => createHash('sha256').update(tk).digest('hex')),
        `${userPrefix}-`,
        i,
        STORED_ATTRIBUTES_JSON,
        iso(t.created),
        iso(t.last),
        iso(t.expires),
      ],
    );
  }
  return tokens;
}

/**
 * Inserts `count` sessions into our table in one statement (tokens unknown: for cleanup and touches).
 * `expiredEvery: k` makes every k-th row expired instead (scattered through the table); `from` numbers the
 * users on from there (to load a large table in several statements). Sessions have no insert trigger
 * (the change capture fires on updates, deletes and truncates only), so a bulk load writes no change rows.
 */
export async function seedOursBulk(
  admin: pg.Pool,
  table: string,
  count: number,
  state: RowState,
  options: { lastAccessed?: number; expiredEvery?: number; from?: number } = {},
): Promise<void> {
  const now = Date.now();
  const t = times(state, now);
  const x = times('expired', now);
  await admin.query(
    `INSERT INTO ${table} (id, token_hash, user_id, attributes, version, created_at, updated_at, last_accessed, expires_at)
     SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), 'bulk-' || g, $2::jsonb, 1,
       CASE WHEN e THEN $7::timestamptz ELSE $3::timestamptz END, CASE WHEN e THEN $7::timestamptz ELSE $3::timestamptz END,
       CASE WHEN e THEN $8::timestamptz ELSE $4::timestamptz END, CASE WHEN e THEN $9::timestamptz ELSE $5::timestamptz END
     FROM generate_series($10::integer + 1, $10::integer + $1::integer) AS g, LATERAL (SELECT $6::integer > 0 AND g % $6::integer = 0 AS e) AS k`,
    [
      count,
      STORED_ATTRIBUTES_JSON,
      iso(t.created),
      iso(options.lastAccessed ?? t.last),
      iso(t.expires),
      options.expiredEvery ?? 0,
      iso(x.created),
      iso(x.last),
      iso(x.expires),
      options.from ?? 0,
    ],
  );
}

/** Inserts `count` peer sessions with sids the caller keeps (returned). */
export async function seedPeerWithSids(admin: pg.Pool, table: string, count: number, state: RowState = 'live'): Promise<string[]> {
  const sids = Array.from({ length: count }, () => peerSid());
  const t = times(state, Date.now());
  const sess = peerSession('u-0', t.expires);
  for (let i = 0; i < count; i += 5000) {
    await admin.query(
      `INSERT INTO ${table} (sid, sess, expire)
       SELECT s, ($2::jsonb || jsonb_build_object('userId', 'u-' || (ord + $3)))::json, to_timestamp($4::float8)
       FROM unnest($1::text[]) WITH ORDINALITY AS x(s, ord)`,
      [sids.slice(i, i + 5000), JSON.stringify(sess), i, t.expires / 1000],
    );
  }
  return sids;
}

/** Inserts `count` peer sessions in one statement. */
export async function seedPeerBulk(admin: pg.Pool, table: string, count: number, state: RowState): Promise<void> {
  const t = times(state, Date.now());
  await admin.query(
    `INSERT INTO ${table} (sid, sess, expire)
     SELECT encode(sha256(uuid_send(gen_random_uuid())), 'base64'), ($2::jsonb || jsonb_build_object('userId', 'bulk-' || g))::json, to_timestamp($3::float8)
     FROM generate_series(1, $1::integer) AS g`,
    [count, JSON.stringify(peerSession('x', t.expires)), t.expires / 1000],
  );
}
