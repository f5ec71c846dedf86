// The peer: connect-pg-simple (express-session's PostgreSQL store), on its own table created from its own
// table.sql in the section's schema, its own pool of the same size, no prune timer.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import connectPgSimple from 'connect-pg-simple';
import session, { type SessionData } from 'express-session';
import type pg from 'pg';

const require = createRequire(import.meta.url);

export interface Peer {
  get(sid: string): Promise<SessionData | null | undefined>;
  set(sid: string, sess: SessionData): Promise<void>;
  destroy(sid: string): Promise<void>;
  /** connect-pg-simple's own expired-row cleanup (one DELETE ... WHERE expire < now). */
  prune(): Promise<void>;
  /** `"schema"."session"` */
  table: string;
}

/** Creates `"schema"."session"` from connect-pg-simple's table.sql (its primary key and expire index included). */
export async function createPeerTable(admin: pg.Pool, schema: string): Promise<string> {
  const sqlFile = join(dirname(require.resolve('connect-pg-simple')), 'table.sql');
  const table = `"${schema}"."session"`;
  await admin.query(readFileSync(sqlFile, 'utf8').replaceAll('"session"', table));
  return table;
}

export function openPeer(pool: pg.Pool, schema: string): Peer {
  const PGStore = connectPgSimple(session);
  const store = new PGStore({ pool, schemaName: schema, pruneSessionInterval: false, createTableIfMissing: false });
  const cb =
    <T>(resolve: (v: T) => void, reject: (e: unknown) => void) =>
    (err: unknown, v?: T) =>
      err ? reject(err) : resolve(v as T);
  return {
    get: (sid) => new Promise((res, rej) => store.get(sid, cb(res, rej))),
    set: (sid, sess) => new Promise((res, rej) => store.set(sid, sess, cb(res, rej))),
    destroy: (sid) => new Promise((res, rej) => store.destroy(sid, cb(res, rej))),
    prune: () => new Promise((res, rej) => store.pruneSessions((err) => (err ? rej(err) : res()))),
    table: `"${schema}"."session"`,
  };
}
