// An idle worker lets a Neon compute scale to zero. The worker reaches PostgreSQL only
// through a TCP proxy here, which counts every byte either way: after the idle timeout, with the flush and
// cleanup timers still ticking, nothing crosses it and no connection is open, while a change is made
// meanwhile (directly, not through the worker); the next poll then wakes the worker and gets that change
// from the cursor it held. Neon suspends a compute after minutes without queries, and a connection it
// closes on suspend would be reopened by a listener that reconnects: so the worker must send nothing and
// hold nothing.
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import type { FeedResponse } from '../../src/protocol.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const SECRET = 'idle-secret-0123456789-abcdefghijklmnopqr';
const auth = { authorization: `Bearer ${SECRET}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.each(['pg', 'neon'] as const)('an idle worker sends nothing to the database (%s)', (driver) => {
  let admin: pg.Pool;
  let schemaName: string;
  let proxy: TcpProxy;
  let manager: SessionManager;
  let worker: RunningWorker | undefined;
  const logs: string[] = [];

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    schemaName = uniqueSchema(`idle_${driver}`);
    await migrate(drizzle(admin), { schemaName });
    manager = new SessionManager(drizzle(admin), { schemaName });
    proxy = await startTcpProxy(databaseUrl());
  });
  afterAll(async () => {
    await worker?.close();
    await proxy.close();
    await dropSchema(admin, schemaName);
    await admin.end();
  });

  it('goes idle after idleTimeout (touches written first), stays silent, and the next poll gets what changed meanwhile', async () => {
    worker = await startWorker({
      databaseUrl: proxy.url,
      secret: SECRET,
      driver,
      neonWsProxy: driver === 'neon' ? `127.0.0.1:${inject('wsProxyPort')}/v2` : undefined,
      port: 0,
      schemaName,
      idleTimeout: 700,
      pollInterval: 50,
      // The timers keep firing while idle: neither may reach the database.
      lastAccessUpdateInterval: 150,
      cleanupInterval: 200,
      log: (l) => logs.push(l),
    });
    const w = worker;
    await w.ready();
    const a = await manager.createSession('idle-a', { n: 1 });
    const b = await manager.createSession('idle-b', { n: 1 });
    const feed = async (after?: string) => {
      const r = await fetch(`${w.url}/v1/changes${after ? `?after=${encodeURIComponent(after)}` : ''}`, { headers: auth });
      expect(r.status).toBe(200);
      return (await r.json()) as FeedResponse;
    };
    const cursor = (await feed()).cursor;
    // A touch arrives just before the traffic stops: it must be written before the worker goes idle.
    await sleep(20);
    const touchedAt = Date.now();
    const t = await fetch(`${w.url}/v1/touches`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ touches: [[a.session.id, touchedAt]] }),
    });
    expect(t.status).toBe(200);

    await until(() => w.listener.asleep, 'the worker to go idle');
    const stored = await admin.query(
      `SELECT (extract(epoch from last_accessed) * 1000)::float8 AS t FROM "${schemaName}"."sessions" WHERE id = $1`,
      [a.session.id],
    );
    expect(stored.rows[0].t).toBe(touchedAt);
    // Let a pool connection used by the last flush reach its idle close, then measure a quiet stretch.
    await until(() => proxy.open === 0, 'the worker to close every connection');
    const before = { up: proxy.bytesUp, down: proxy.bytesDown, opened: proxy.opened };
    // Changed meanwhile, by someone else: no LISTEN connection is there to hear it.
    b.session.set('n', 2);
    await manager.updateSession(b.session);
    // A probe and a metrics scrape must not wake it either.
    expect(await (await fetch(`${w.url}/readyz`)).json()).toEqual({ ready: true });
    expect((await fetch(`${w.url}/metrics`, { headers: auth })).status).toBe(200);
    await sleep(1500); // > 2 idle timeouts, 7 flush intervals, 7 cleanup intervals, 30 poll intervals
    expect({ up: proxy.bytesUp, down: proxy.bytesDown, opened: proxy.opened, open: proxy.open }).toEqual({ ...before, open: 0 });
    expect(w.listener.asleep).toBe(true);

    // The next poll: answered (it reads the record itself), wakes the listener, nothing missed.
    const page = await feed(cursor);
    expect(page.reset).toBe(false);
    expect(page.ids).toContain(b.session.id);
    await w.ready();
    expect(w.listener.asleep).toBe(false);
    expect(proxy.bytesUp).toBeGreaterThan(before.up);
    // Back on the listener's chain: the cursor it hands out is answered from memory again.
    const again = await feed(page.cursor);
    expect(again.reset).toBe(false);
    // The cleanup skipped while idle runs once traffic is back.
    const idleAt = logs.findIndex((l) => l.includes('listener idle'));
    const wokeAt = logs.findIndex((l, i) => i > idleAt && l.includes('listener waking up'));
    expect(idleAt).toBeGreaterThanOrEqual(0);
    expect(wokeAt).toBeGreaterThan(idleAt);
    await until(() => logs.slice(wokeAt).some((l) => /cleanup (done|skipped)/.test(l)), 'the deferred cleanup');
    expect(logs.slice(idleAt, wokeAt).some((l) => /cleanup (done|skipped)/.test(l))).toBe(false);
  });
});
