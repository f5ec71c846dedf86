// The middleware with its sync client against a running worker: staleness bounded with the worker up,
// down and back, touches batched to the worker. Node side, through app.request().
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { SyncClient } from '../../src/sync/client.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { DRIVERS, databaseUrl } from '../support/db.ts';
import { useStore } from '../support/store-suite.ts';

const SECRET = 'hono-sync-secret-0123456789-abcdefghijkl';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(DRIVERS)('middleware + sync client + worker (%s)', (driver) => {
  const fx = useStore(driver, 'honosync');
  let worker: RunningWorker | undefined;
  const startW = async () => {
    worker = await startWorker({
      databaseUrl: databaseUrl(),
      secret: SECRET,
      port: worker?.port ?? 0,
      schemaName: fx.schemaName,
      lastAccessUpdateInterval: 3_600_000,
      cleanupInterval: 3_600_000,
      log: 'silent',
    });
    await worker.ready();
    return worker;
  };
  beforeAll(async () => {
    await startW();
  });
  afterAll(async () => {
    await worker?.close();
  });

  const build = (maxStaleness: number, syncOptions: { directFallback?: boolean; workerUrl?: string } = {}) => {
    const manager = fx.manager({ maxStaleness });
    const errors: unknown[] = [];
    const sync = new SyncClient(manager, {
      workerUrl: syncOptions.workerUrl ?? (worker as RunningWorker).url,
      secret: SECRET,
      mode: 'poll',
      syncInterval: 50,
      requestTimeout: 500,
      touchInterval: 0,
      directFallback: syncOptions.directFallback ?? true,
      onError: (e) => errors.push(e),
    });
    const app = new Hono<SessionEnv>();
    app.use(sessionMiddleware({ manager, sync, cookie: { prefix: 'none', secure: false } }));
    app.get('/me', async (c) => {
      const s = await c.var.session.get();
      return c.json(s && { id: s.id, n: s.get('n') ?? null });
    });
    const me = async (token: string) =>
      (await (await app.request('/me', { headers: { cookie: `session=${token}` } })).json()) as { id: string; n: number } | null;
    return { manager, sync, app, me, errors };
  };

  it('a change made elsewhere is not served after maxStaleness, and cache hits do no I/O meanwhile', async () => {
    const { manager, me } = build(1000);
    const other = fx.manager();
    const { session, token } = await other.createSession('hs-1', { n: 1 });
    expect(await me(token)).toMatchObject({ n: 1 });
    manager.db.reset();
    expect(await me(token)).toMatchObject({ n: 1 });
    expect(manager.db.count).toBe(0);
    session.set('n', 2);
    await other.updateSession(session);
    let seen = 1;
    const deadline = Date.now() + 1000 + 400;
    while (Date.now() < deadline && seen !== 2) {
      seen = ((await me(token)) as { n: number }).n;
      await sleep(20);
    }
    expect(seen).toBe(2);
  });

  it('with the worker down, bounded staleness holds (direct catch-up and plain bypass); recovery is automatic', async () => {
    for (const directFallback of [true, false]) {
      const { manager, me, errors, sync } = build(500, { directFallback });
      const other = fx.manager();
      const { token } = await other.createSession(`hs-2-${directFallback}`, { n: 1 });
      expect(await me(token)).toMatchObject({ n: 1 });
      await worker?.close();
      await other.deleteSession(token);
      await sleep(500 + 150);
      expect(await me(token)).toBeNull();
      expect(errors.length).toBeGreaterThan(0);
      if (directFallback) expect(sync.cursor).not.toBeNull();
      await startW();
      // Back to normal: a fresh session is cached again and changes arrive through the worker.
      const again = await other.createSession(`hs-3-${directFallback}`, { n: 5 });
      expect(await me(again.token)).toMatchObject({ n: 5 });
      await sleep(120);
      manager.db.reset();
      await me(again.token);
      expect(manager.db.count).toBeLessThanOrEqual(1);
    }
  });

  it('touches are batched to the worker, one POST for many requests, and flushed as one row per session', async () => {
    const { manager, me } = build(1000);
    const s = await manager.createSession('hs-4', {});
    await manager.flushTouches();
    const before = worker?.pendingTouches ?? 0;
    for (let i = 0; i < 20; i++) await me(s.token);
    await sleep(100);
    expect(manager.pendingTouchCount).toBe(0);
    expect((worker as RunningWorker).pendingTouches).toBe(before + 1);
    await worker?.flushTouches();
    const { rows } = await fx.t.admin.query(
      `SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM "${fx.schemaName}"."sessions" WHERE id = $1`,
      [s.session.id],
    );
    expect(rows[0].t).toBeGreaterThan(s.session.lastAccessedAt.getTime());
  });
});
