// Last access reaches the database with nothing but the README's "Using it" setup: a manager with no sync
// client and no startBackgroundTasks(). On Node the manager writes its touches on its own (unref'd) timer
// every lastAccessUpdateInterval; behind sessionMiddleware a due flush goes to executionCtx.waitUntil
// (Workers) after the response; close() writes what is pending. With a SyncClient nothing changes: the
// touches go to the sync host, the manager writes none itself. Real PostgreSQL over node-postgres.
import { drizzle } from 'drizzle-orm/node-postgres';
import { Hono } from 'hono';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { bundleWorker, COMPATIBILITY_DATE } from '../../harness/workerd.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { migrate } from '../../src/migrate.ts';
import { SyncClient } from '../../src/sync/client.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('touches are written without a sync client or startBackgroundTasks()', () => {
  let pool: pg.Pool;
  let schemaName: string;
  const stored = async (id: string): Promise<number> => {
    const r = await pool.query(`SELECT last_accessed FROM "${schemaName}".sessions WHERE id = $1`, [id]);
    return new Date(r.rows[0].last_accessed).getTime();
  };

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: databaseUrl(), max: 4 });
    schemaName = uniqueSchema('touch_flush');
    await migrate(drizzle(pool), { schemaName });
  });
  afterAll(async () => {
    await dropSchema(pool, schemaName);
    await pool.end();
  });

  it("the README's manager (Node): reads every 500 ms for 4 s move last_accessed within lastAccessUpdateInterval", async () => {
    // The README's options, plus a short interval so the test does not wait 10 minutes.
    const manager = new SessionManager<{ name: string }>(drizzle(pool), { maxSessions: 5, schemaName, lastAccessUpdateInterval: 1000 });
    try {
      const { session, token } = await manager.createSession('user-42', { name: 'Ada' });
      const created = session.createdAt.getTime();
      let lastRead = created;
      for (let i = 0; i < 8; i++) {
        await sleep(500);
        expect(await manager.getSession(token)).not.toBeNull();
        lastRead = Date.now();
      }
      // Within one interval (+ a margin for the statement) of the last read, it is in the database.
      await sleep(1000 + 500);
      const last = await stored(session.id);
      expect(last).toBeGreaterThan(created + 2500);
      expect(last).toBeLessThanOrEqual(lastRead);
      expect(manager.pendingTouchCount).toBe(0);
    } finally {
      await manager.close();
    }
  });

  it('the middleware on Node (no executionCtx): reads through app.request move last_accessed in the background', async () => {
    const manager = new SessionManager(drizzle(pool), { schemaName, lastAccessUpdateInterval: 1000 });
    try {
      const app = new Hono<SessionEnv>();
      app.use(sessionMiddleware({ manager }));
      app.get('/', async (c) => c.text(String((await c.var.session.get())?.userId ?? null)));
      const { session, token } = await manager.createSession('node-user');
      const created = session.createdAt.getTime();
      for (let i = 0; i < 6; i++) {
        await sleep(500);
        const res = await app.request('/', { headers: { cookie: `__Host-session=${token}` } });
        expect(await res.text()).toBe('node-user');
      }
      await sleep(1500);
      expect(await stored(session.id)).toBeGreaterThan(created + 2000);
    } finally {
      await manager.close();
    }
  });

  it('in workerd, behind neonSessionMiddleware without a sync host: the due flush runs in waitUntil after a response', async () => {
    const { session, token } = await new SessionManager(drizzle(pool), { schemaName }).createSession('workerd-user');
    const created = session.createdAt.getTime();
    const mf = new Miniflare({
      modules: true,
      script: await bundleWorker(new URL('../support/touch-flush-worker.ts', import.meta.url).pathname),
      compatibilityDate: COMPATIBILITY_DATE,
      bindings: { DATABASE_URL: databaseUrl(), NEON_WS_PROXY: `127.0.0.1:${inject('wsProxyPort')}/v2`, SESSION_SCHEMA: schemaName },
    });
    try {
      const get = async () => (await mf.dispatchFetch('http://app.test/', { headers: { cookie: `__Host-session=${token}` } })).text();
      expect(await get()).toBe('workerd-user'); // a miss: read, touch recorded in the isolate's memory
      await sleep(1200);
      expect(await get()).toBe('workerd-user'); // the oldest touch is an interval old: flushed after this response
      let last = created;
      for (let i = 0; i < 50 && last === created; i++) {
        await sleep(100);
        last = await stored(session.id);
      }
      expect(last).toBeGreaterThan(created);
    } finally {
      await mf.dispose();
    }
  }, 60_000);

  it('close() writes the touches still pending', async () => {
    let now = Date.now();
    const manager = new SessionManager(drizzle(pool), { schemaName, clock: () => now });
    const { session, token } = await manager.createSession('closing-user');
    now += 30_000;
    expect(await manager.getSession(token)).not.toBeNull();
    expect(await stored(session.id)).toBe(now - 30_000);
    await manager.close();
    expect(manager.pendingTouchCount).toBe(0);
    expect(await stored(session.id)).toBe(now);
  });

  it('the middleware on a Workers executionCtx hands a due flush to waitUntil, after the response', async () => {
    let now = Date.now();
    // A minute-long interval on an injected clock: the real-time timer cannot fire during the test.
    const manager = new SessionManager(drizzle(pool), { schemaName, lastAccessUpdateInterval: 60_000, clock: () => now });
    try {
      const app = new Hono<SessionEnv>();
      app.use(sessionMiddleware({ manager }));
      app.get('/', async (c) => c.text(String((await c.var.session.get())?.userId ?? null)));
      const waited: Promise<unknown>[] = [];
      const ctx = { waitUntil: (p: Promise<unknown>) => void waited.push(p), passThroughOnException() {}, props: {} };
      const get = () => app.request('/', { headers: { cookie: `__Host-session=${token}` } }, {}, ctx);
      const { session, token } = await manager.createSession('worker-user');
      const created = now;

      now += 1000;
      expect(await (await get()).text()).toBe('worker-user');
      // Not due yet (the oldest touch is younger than lastAccessUpdateInterval): nothing handed over.
      expect(waited).toHaveLength(0);
      expect(manager.pendingTouchCount).toBe(1);

      now += 60_000;
      expect(await (await get()).text()).toBe('worker-user');
      expect(waited).toHaveLength(1);
      await Promise.all(waited);
      expect(manager.pendingTouchCount).toBe(0);
      expect(await stored(session.id)).toBe(created + 61_000);
    } finally {
      await manager.close();
    }
  });

  it('with a SyncClient the manager writes no touches itself (they go to the sync host)', async () => {
    let now = Date.now();
    const manager = new SessionManager(drizzle(pool), { schemaName, lastAccessUpdateInterval: 1000, clock: () => now });
    new SyncClient(manager, { workerUrl: 'http://127.0.0.1:9' });
    const { session, token } = await manager.createSession('synced-user');
    const created = now;
    now += 5000;
    expect(await manager.getSession(token)).not.toBeNull();
    now += 5000;
    expect(manager.flushTouchesIfDue()).toBeUndefined();
    await sleep(1500); // the manager's own timer would have fired by now
    expect(manager.pendingTouchCount).toBe(1);
    expect(await stored(session.id)).toBe(created);
  });

  it('on a runtime whose timers have no unref (Workers, Deno) and nothing to write touches, it warns once; not behind the middleware', async () => {
    let now = Date.now();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const realSetTimeout = globalThis.setTimeout;
    const make = async () => {
      const manager = new SessionManager(drizzle(pool), { schemaName, lastAccessUpdateInterval: 1000, clock: () => now });
      const a = await manager.createSession('timerless-a');
      const b = await manager.createSession('timerless-b');
      return { manager, a: a.token, b: b.token };
    };
    try {
      const alone = await make();
      const behindMiddleware = await make();
      sessionMiddleware({ manager: behindMiddleware.manager });
      // The first touch of a run arms the flush timer: here setTimeout answers a number, as workerd's does.
      globalThis.setTimeout = ((..._args: unknown[]) => 1) as unknown as typeof setTimeout;
      try {
        for (const m of [alone, behindMiddleware]) expect(await m.manager.getSession(m.a)).not.toBeNull(); // cache hits: no I/O
      } finally {
        globalThis.setTimeout = realSetTimeout;
      }
      now += 2500;
      for (const m of [alone, behindMiddleware]) expect(await m.manager.getSession(m.b)).not.toBeNull();
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]?.[0])).toMatch(/nothing writes them.*sessionMiddleware.*SyncClient.*flushTouches/);
      // Once: more touches that wait say nothing more.
      now += 5000;
      const c = await alone.manager.createSession('timerless-c');
      expect(await alone.manager.getSession(c.token)).not.toBeNull();
      expect(warn).toHaveBeenCalledTimes(1);
      await alone.manager.close();
      await behindMiddleware.manager.close();
    } finally {
      warn.mockRestore();
    }
  });

  it('with startBackgroundTasks() its interval timer writes them, and the manager arms no timer of its own', async () => {
    const manager = new SessionManager(drizzle(pool), { schemaName, lastAccessUpdateInterval: 60_000 });
    const stop = manager.startBackgroundTasks();
    try {
      const { session, token } = await manager.createSession('tasks-user');
      await sleep(20);
      expect(await manager.getSession(token)).not.toBeNull();
      expect(manager.flushTouchesIfDue()).toBeUndefined();
      expect(await stored(session.id)).toBe(session.createdAt.getTime());
    } finally {
      stop();
      await manager.close();
    }
  });
});
