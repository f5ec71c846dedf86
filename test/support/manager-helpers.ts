// Helpers for the SessionManager test files (test/core/manager-*.test.ts, test/db/manager-migrate.test.ts). Everything here runs against the
// real database: the executors below only decide *which* real database a statement goes to, or run test
// code between a statement's result and its return to the library.
import { createHash, randomUUID } from 'node:crypto';
import { Pool as NeonPool } from '@neondatabase/serverless';
import { drizzle as drizzleNeon } from 'drizzle-orm/neon-serverless';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import type { SqlExecutor } from '../../src/db/executor.ts';
import { configureNeon, type Driver } from './db.ts';
import type { StoreFixture } from './store-suite.ts';

/** SHA-256 of a token as lower-case hex, computed independently of the library (node:crypto). */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A user id no other test uses (tests of one file share a schema). */
export function uid(label = 'u'): string {
  return `${label}-${randomUUID()}`;
}

export interface RawRow {
  id: string;
  token_hash: string;
  user_id: string;
  group_id: string | null;
  attributes: Record<string, { v: unknown; ver: number; exp?: number }>;
  version: number;
  created_at: number;
  updated_at: number;
  last_accessed: number;
  expires_at: number;
  /** The row version's creating transaction: changes on every UPDATE of the row. */
  xmin: string;
}

/** Qualified sessions table of the fixture (or of another schema/prefix). */
export function table(fx: StoreFixture, prefix = '', schema = fx.schemaName): string {
  return `"${schema}"."${prefix}sessions"`;
}

const RAW_COLUMNS = `id::text AS id, encode(token_hash, 'hex') AS token_hash, user_id, group_id, attributes, version,
  (extract(epoch from created_at) * 1000)::float8 AS created_at, (extract(epoch from updated_at) * 1000)::float8 AS updated_at,
  (extract(epoch from last_accessed) * 1000)::float8 AS last_accessed, (extract(epoch from expires_at) * 1000)::float8 AS expires_at,
  xmin::text AS xmin`;

/** The stored row of a session, read out of band with the admin pool ("typed into psql"). */
export async function rawRow(fx: StoreFixture, id: string): Promise<RawRow | undefined> {
  const r = await fx.t.admin.query<RawRow>(`SELECT ${RAW_COLUMNS} FROM ${table(fx)} WHERE id = $1::uuid`, [id]);
  return r.rows[0];
}

export async function rawRowsOfUser(fx: StoreFixture, userId: string): Promise<RawRow[]> {
  const r = await fx.t.admin.query<RawRow>(`SELECT ${RAW_COLUMNS} FROM ${table(fx)} WHERE user_id = $1 ORDER BY created_at, id`, [userId]);
  return r.rows;
}

export async function countRows(fx: StoreFixture, where = 'true', params: unknown[] = []): Promise<number> {
  const r = await fx.t.admin.query<{ n: number }>(`SELECT count(*)::integer AS n FROM ${table(fx)} WHERE ${where}`, params);
  return r.rows[0]!.n;
}

/** Sets last_accessed of a row out of band. */
export async function setLastAccessed(fx: StoreFixture, id: string, ms: number): Promise<void> {
  await fx.t.admin.query(`UPDATE ${table(fx)} SET last_accessed = $2::timestamptz WHERE id = $1::uuid`, [id, new Date(ms).toISOString()]);
}

/**
 * A real Drizzle database on a port where nothing listens, through the given driver (the Neon driver goes
 * through the test WebSocket proxy, which then fails to reach the port).
 */
export function unreachableDb(driver: Driver): { db: SqlExecutor; close(): Promise<void> } {
  return openDriver(driver, 'postgres://postgres:postgres@127.0.0.1:1/test');
}

/** A Drizzle database through the given driver on `url` (small pool, 5 s connect timeout, errors typed). */
export function openDriver(driver: Driver, url: string): { db: SqlExecutor; close(): Promise<void> } {
  if (driver === 'node-postgres') {
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
    pool.on('error', () => {});
    return { db: drizzlePg(pool), close: () => pool.end() };
  }
  configureNeon();
  const pool = new NeonPool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
  pool.on('error', () => {});
  return { db: drizzleNeon(pool), close: () => pool.end() };
}

/** Sends statements to `up` or, after `down()`, to `dead` (a real unreachable database). */
export function switchable(up: SqlExecutor, dead: SqlExecutor): SqlExecutor & { down(): void; up(): void; count: number } {
  let target = up;
  const w = {
    count: 0,
    down() {
      target = dead;
    },
    up() {
      target = up;
    },
    execute(q: Parameters<SqlExecutor['execute']>[0]) {
      w.count++;
      return target.execute(q);
    },
  };
  return w;
}

/**
 * Runs `hook` once, after the next statement's result arrived and before the library sees it: a way to
 * make something happen "while a query is in flight" deterministically.
 */
export function interceptNext(db: SqlExecutor): SqlExecutor & { arm(hook: () => Promise<void>): void; count: number } {
  let pending: (() => Promise<void>) | undefined;
  const w = {
    count: 0,
    arm(hook: () => Promise<void>) {
      pending = hook;
    },
    async execute(q: Parameters<SqlExecutor['execute']>[0]) {
      w.count++;
      const result = await db.execute(q);
      const hook = pending;
      pending = undefined;
      if (hook) await hook();
      return result;
    },
  };
  return w;
}

/** Catches the rejection of a promise (or a throw of a function) so its fields can be asserted. */
export async function caught(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection, got a result');
}
