// pg-edge-session/neon in Node (the same code runs in workerd: test/system/workerd.test.ts, test-consumers/): the
// per-statement Neon executor against the real database through the local WebSocket proxy, and the
// option errors. Also migrationSql()'s own argument checks (its SQL is compared with migrate()'s catalog
// in test-consumers/).
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import ws from 'ws';
import { ConfigError, InvalidArgumentError } from '../../src/core/errors.ts';
import { migrationSql, migrationTags } from '../../src/db/migration-sql.ts';
import { migrate } from '../../src/migrate.ts';
import { neonExecutor, neonSessions } from '../../src/neon.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const APP = 'pges-neon-entry-test';

describe('pg-edge-session/neon', () => {
  let admin: pg.Pool;
  let schemaName: string;
  const options = () => ({
    databaseUrl: databaseUrl(),
    applicationName: APP,
    wsProxy: `127.0.0.1:${inject('wsProxyPort')}/v2`,
    // Node 20 has no global WebSocket.
    neonConfig: { webSocketConstructor: ws },
  });
  const open = async () =>
    Number((await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [APP])).rows[0].n);

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    schemaName = uniqueSchema('neon_entry');
    await migrate(drizzle(admin), { schemaName });
  });
  afterAll(async () => {
    await dropSchema(admin, schemaName);
    await admin.end();
  });

  it('runs the manager on one connection per statement, each closed once db.closed() settles', async () => {
    const { manager, sync, db } = neonSessions<{ theme: string }>({ ...options(), config: { schemaName } });
    expect(sync).toBeUndefined();
    const { session, token } = await manager.createSession('neon-user', { theme: 'dark' });
    await db.closed();
    expect(await open()).toBe(0);
    const again = await manager.getSession(token, { forceRefresh: true });
    expect(again?.id).toBe(session.id);
    expect(again?.get('theme')).toBe('dark');
    // Statements in parallel get connections of their own, and none stays open afterwards.
    const ids = await Promise.all([1, 2, 3].map(async () => (await manager.getSession(token, { forceRefresh: true }))?.id));
    expect(ids).toEqual([session.id, session.id, session.id]);
    await db.closed();
    expect(await open()).toBe(0);
    expect(await manager.deleteSession(token)).toBe(true);
    await db.closed();
    expect(await open()).toBe(0);
  });

  it("with close: 'before' (the sync host's statements) a statement settles only once its connection is closed", async () => {
    const db = neonExecutor({ ...options(), close: 'before' });
    const { sql } = await import('drizzle-orm');
    for (let i = 0; i < 3; i++) {
      await db.execute(sql`SELECT 1`);
      expect(await open()).toBe(0);
    }
    expect(() => neonExecutor({ ...options(), close: 'later' as 'after' })).toThrow(ConfigError);
  });

  it("db.request(): one connection for a request's statements, a broken one replaced, closed once released", async () => {
    const db = neonExecutor(options());
    const { sql } = await import('drizzle-orm');
    const pid = async (on: { execute: typeof db.execute }) =>
      Number(((await on.execute(sql`SELECT pg_backend_pid() AS p`)) as { rows: { p: number }[] }).rows[0]?.p);
    const conn = db.request();
    expect(await open()).toBe(0); // opened at the first statement, not before
    // Statements sent together run one at a time on the one connection; a SQL error does not lose it.
    const [a, b] = await Promise.all([pid(conn), pid(conn)]);
    await expect(conn.execute(sql`SELECT * FROM "${sql.raw(schemaName)}".no_such_table`)).rejects.toThrow(/no_such_table/);
    expect([a, await pid(conn)]).toEqual([b, b]);
    expect(await open()).toBe(1);
    // The connection dies: the next statement fails with it, the one after gets a new connection.
    await admin.query('SELECT pg_terminate_backend($1)', [a]);
    for (
      let i = 0;
      i < 50 &&
      (await conn.execute(sql`SELECT 1`).then(
        () => true,
        () => false,
      ));
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    const c = await pid(conn);
    expect(c).not.toBe(a);
    // Released with a statement under way: it closes once that statement settled.
    const last = pid(conn);
    conn.release();
    expect(await last).toBe(c);
    // After the release a statement gets a connection of its own.
    expect(await pid(conn)).not.toBe(c);
    await db.closed();
    expect(await open()).toBe(0);
  });

  it('makes the sync client in poll mode when sync is given', () => {
    const { sync } = neonSessions({ ...options(), sync: { workerUrl: 'http://127.0.0.1:9' } });
    expect(sync).toBeDefined();
  });

  it('a database error reaches the caller and leaves no connection open', async () => {
    const db = neonExecutor(options());
    const { sql } = await import('drizzle-orm');
    await expect(db.execute(sql`SELECT * FROM "${sql.raw(schemaName)}".no_such_table`)).rejects.toThrow(/no_such_table/);
    await db.closed();
    expect(await open()).toBe(0);
  });

  it('refuses a missing database URL or a bad proxy with a ConfigError naming the option', () => {
    expect(() => neonSessions({ databaseUrl: '' })).toThrow(ConfigError);
    expect(() => neonSessions({ databaseUrl: '' })).toThrow(/databaseUrl/);
    expect(() => neonSessions({ databaseUrl: 'postgres://x', wsProxy: '' })).toThrow(/wsProxy/);
  });
});

describe('migrationSql()', () => {
  it('refuses an unknown tag, mode or a bad name with a typed error, and renders nothing for an up-to-date database', () => {
    const tags = migrationTags();
    expect(() => migrationSql({ after: 'nope' })).toThrow(InvalidArgumentError);
    expect(() => migrationSql({ mode: 'x' as 'all' })).toThrow(InvalidArgumentError);
    expect(() => migrationSql({ schemaName: 'pg_x' })).toThrow(ConfigError);
    expect(() => migrationSql({ tablePrefix: 'a b' })).toThrow(ConfigError);
    const none = migrationSql({ after: tags.at(-1) as string });
    expect(none).not.toContain('INSERT INTO');
    expect(none).toContain('(none)');
  });

  it("leaves table DDL to drizzle-kit in 'drizzle-kit' mode, and keeps functions, triggers and the recorded tags", () => {
    const all = migrationSql({ schemaName: 's1', tablePrefix: 'p_' });
    const kit = migrationSql({ schemaName: 's1', tablePrefix: 'p_', mode: 'drizzle-kit' });
    expect(all).toContain('CREATE TABLE "s1"."p_sessions"');
    expect(kit).not.toContain('CREATE TABLE "s1"."p_sessions"');
    expect(kit).not.toMatch(/CREATE (UNIQUE )?INDEX/);
    expect(kit).toContain('CREATE OR REPLACE FUNCTION "s1"."p_session_get"');
    expect(kit).toMatch(/CREATE (OR REPLACE )?TRIGGER "p_sessions_capture_update"/);
    for (const tag of migrationTags()) expect(kit).toContain(`('${tag}')`);
  });
});
