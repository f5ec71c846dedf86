// Nothing secret leaves through errors or logs (ARCHITECTURE.md, promise 17): secrets are planted (attribute
// values, user ids, tokens and their SHA-256, the database password, the worker's secret), the database is
// made to fail in the ways that reach error messages and log lines (a statement that fails, a database that
// cannot be reached), and every error message, every error's whole inspected form (its cause chain and
// fields: what `console.error(err)` prints) and every log line of the run is searched for them. Each error
// must still name its cause: the driver's message, its code, and host:port for a connection.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { SessionError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import { SyncClient } from '../../src/sync/client.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { DRIVERS, databaseUrl, uniqueSchema } from '../support/db.ts';
import { openDriver, sha256Hex, table } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const WORKER_SECRET = `worker-secret-${randomBytes(16).toString('hex')}`;
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

/** Every form a planted value could take in a message: as is, JSON-quoted, and as base64. */
function forms(values: string[]): string[] {
  return values.flatMap((v) => [v, JSON.stringify(v).slice(1, -1), Buffer.from(v).toString('base64').slice(0, 24)]);
}

/** Asserts that none of `texts` contains a planted secret or a query's parameter list. */
function expectNoSecrets(texts: string[], secrets: string[]) {
  const all = forms(secrets);
  for (const text of texts) {
    for (const s of all) expect(text.includes(s), `a secret (${s.slice(0, 12)}…) in:\n${text}`).toBe(false);
    expect(text).not.toMatch(/params:/);
  }
}

/** The message and the whole inspected error (cause chain, own fields) of every error. */
function errorTexts(errors: unknown[]): string[] {
  return errors.flatMap((e) => [e instanceof Error ? e.message : String(e), inspect(e, { depth: 10 })]);
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** A URL with the planted password (the test database trusts local connections, so any password works). */
function withPassword(url: string, port?: number): string {
  const u = new URL(url);
  u.password = PASSWORD;
  if (port !== undefined) {
    u.hostname = '127.0.0.1';
    u.port = String(port);
  }
  return u.toString();
}

describe.each(DRIVERS)('no secret in errors or logs (%s)', (driver) => {
  const fx = useStore(driver, 'noleak');
  const secretValue = `pkce-verifier-${randomBytes(16).toString('hex')}`;
  const csrfSecret = `csrf-${randomBytes(16).toString('hex')}`;
  const userId = `user-${randomBytes(12).toString('hex')}`;
  const token = randomBytes(32).toString('base64url');
  const planted = [secretValue, csrfSecret, userId, token, sha256Hex(token), PASSWORD, WORKER_SECRET];

  it('a statement that fails: the message names the driver message and SQLSTATE, and holds no parameter', async () => {
    const m = fx.manager();
    // The real session the updates go through, created before the trap is set.
    const { session } = await m.createSession(`${userId}-ok`, { k: 1 });
    const fn = `"${fx.schemaName}"."noleak_fail"`;
    await fx.t.admin.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'planted failure'; END $$`);
    await fx.t.admin.query(`CREATE TRIGGER noleak_fail BEFORE INSERT OR UPDATE ON ${table(fx)} FOR EACH ROW EXECUTE FUNCTION ${fn}()`);
    const errors: unknown[] = [];
    try {
      errors.push(await caught(m.createSession(userId, { verifier: secretValue, csrf: csrfSecret })));
      session.set('verifier', secretValue);
      session.set('csrf', csrfSecret);
      errors.push(await caught(m.updateSession(session)));
    } finally {
      await fx.t.admin.query(`DROP TRIGGER noleak_fail ON ${table(fx)}`);
      await fx.t.admin.query(`DROP FUNCTION ${fn}()`);
    }
    for (const e of errors) {
      expect(e).toBeInstanceOf(SessionError);
      expect(e).toMatchObject({ code: 'DATABASE_ERROR', sqlState: 'P0001' });
      expect((e as Error).message).toContain('planted failure');
      expect((e as Error).message).toContain('P0001');
      expect((e as Error).cause).toMatchObject({ code: 'P0001' });
    }
    expectNoSecrets(errorTexts(errors), planted);
  });

  it('a database that cannot be reached: the message names host:port and the error code, never the password', async () => {
    // A port where nothing listens (the Neon driver goes through the WebSocket proxy, which then fails).
    const dead = openDriver(driver, withPassword(databaseUrl(), 1));
    const errors: unknown[] = [];
    try {
      const m = new SessionManager(dead.db, { schemaName: fx.schemaName });
      errors.push(await caught(m.createSession(userId, { verifier: secretValue, csrf: csrfSecret })));
      errors.push(await caught(m.getSession(token)));
      errors.push(await caught(m.deleteAllUserSessions(userId)));
      errors.push(await caught(m.listUserSessions(userId)));
      errors.push(await caught(m.rotate(token)));
    } finally {
      await dead.close();
    }
    for (const e of errors) {
      expect(e).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
      if (driver === 'node-postgres') {
        expect((e as Error).message).toContain('ECONNREFUSED');
        expect((e as Error).message).toContain('127.0.0.1:1');
      } else {
        // Through the proxy, the driver only sees its WebSocket close.
        expect((e as Error).message).toMatch(/Connection terminated|closed|WebSocket/i);
      }
    }
    expectNoSecrets(errorTexts(errors), planted);
  });
});

describe('no secret in the worker logs or the sync client errors of a run with failures', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  });

  it('touch flushes that fail, a database that goes away, a worker that goes away', async () => {
    const fx = { admin: new pg.Pool({ connectionString: databaseUrl(), max: 2 }) };
    cleanup.push(() => fx.admin.end());
    const schemaName = uniqueSchema('noleak_w');
    await migrate(drizzlePg(fx.admin), { schemaName });
    cleanup.push(() => fx.admin.query(`DROP SCHEMA "${schemaName}" CASCADE`));
    const proxy: TcpProxy = await startTcpProxy(databaseUrl());
    cleanup.push(() => proxy.close());

    const secretValue = `oauth-state-${randomBytes(16).toString('hex')}`;
    const userId = `user-${randomBytes(12).toString('hex')}`;
    const logs: string[] = [];
    const worker: RunningWorker = await startWorker({
      databaseUrl: withPassword(proxy.url),
      secret: WORKER_SECRET,
      port: 0,
      schemaName,
      maxBackoff: 100,
      lastAccessUpdateInterval: 3_600_000,
      log: (l) => logs.push(l),
    });
    cleanup.push(() => worker.close());
    await worker.ready();

    // The isolate side goes straight to the database (its own URL, also with the planted password).
    const direct = openDriver('node-postgres', withPassword(databaseUrl()));
    cleanup.push(() => direct.close());
    const manager = new SessionManager(direct.db, { schemaName });
    const clientErrors: unknown[] = [];
    const sync = new SyncClient(manager, { workerUrl: worker.url, secret: WORKER_SECRET, onError: (e) => clientErrors.push(e) });
    const { session, token } = await manager.createSession(userId, { verifier: secretValue });
    const planted = [secretValue, userId, token, sha256Hex(token), PASSWORD, WORKER_SECRET];

    // 1. Touch flushes that fail inside the database: the worker logs the failure.
    const fn = `"${schemaName}"."noleak_fail"`;
    await fx.admin.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'planted failure'; END $$`);
    await fx.admin.query(`CREATE TRIGGER noleak_fail BEFORE UPDATE ON "${schemaName}"."sessions" FOR EACH ROW EXECUTE FUNCTION ${fn}()`);
    await manager.getSession(token);
    await sync.pushTouches();
    await expect(worker.flushTouches()).rejects.toMatchObject({ code: 'DATABASE_ERROR' });
    await fx.admin.query(`DROP TRIGGER noleak_fail ON "${schemaName}"."sessions"`);
    expect(logs.some((l) => l.includes('touch flush failed') && l.includes('planted failure'))).toBe(true);

    // 2. The database goes away under the worker: the listener logs, the feed answers 503.
    await proxy.down();
    const deadline = Date.now() + 10_000;
    while (worker.listener.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const r = await fetch(`${worker.url}/v1/changes`, { headers: { authorization: `Bearer ${WORKER_SECRET}` } });
    expect(r.status).toBe(503);
    await sync.sync();
    session.set('verifier', `${secretValue}-2`);
    await manager.updateSession(session);
    await proxy.up();
    await worker.ready();

    // 3. The worker goes away: the sync client reports, falls back to the database, and recovers.
    await worker.close();
    await sync.sync();
    await sync.pushTouches();

    // 4. A worker that cannot start: the startup check's message.
    const startErr = await caught(
      startWorker({ databaseUrl: withPassword(databaseUrl(), 1), secret: WORKER_SECRET, port: 0, schemaName, log: (l) => logs.push(l) }),
    );
    expect((startErr as Error).message).toContain('127.0.0.1:1');
    expect((startErr as Error).message).toContain('ECONNREFUSED');

    expect(logs.some((l) => l.includes('listener'))).toBe(true);
    expect(clientErrors.length).toBeGreaterThan(0);
    expectNoSecrets([...logs, ...errorTexts([...clientErrors, startErr])], planted);
  });
});
