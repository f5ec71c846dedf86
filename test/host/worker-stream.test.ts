// The push stream under hostile load: a cap on subscribers (503 with Retry-After beyond
// it), each event serialized once per publish whatever the number of subscribers, a subscriber that does
// not keep up dropped (bounded queue, write timeout), and one shutdown path for every stream instead of a
// listener per stream (which made Node warn MaxListenersExceededWarning past 10 streams).
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Hub, type Subscriber } from '../../src/host/hub.ts';
import { MAX_SUBSCRIBER_QUEUE, openSubscriberStream } from '../../src/host/stream.ts';
import { migrate } from '../../src/migrate.ts';
import type { FeedEvent } from '../../src/protocol.ts';
import { type RunningWorker, startWorker, type WorkerOptions } from '../../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const SECRET = 'stream-secret-0123456789-abcdefghijklmnop';
const auth = { authorization: `Bearer ${SECRET}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Publishes `n` events on a hub whose chain starts at cursor "1:1:". */
function publishMany(hub: Hub, n: number, ids: string[] = []) {
  for (let i = 0; i < n; i++) {
    const from = hub.latest?.cursor ?? null;
    hub.publish(from, `${i + 2}:${i + 2}:`, ids, false, Date.now());
  }
}

describe('Hub and subscriber streams (in memory)', () => {
  it('serializes each event once per publish, and every subscriber gets the same bytes', () => {
    const hub = new Hub();
    hub.publish(null, '1:1:', [], true, Date.now());
    const frames: Uint8Array[] = [];
    const subs: Subscriber[] = Array.from({ length: 500 }, () => ({ push: (f) => frames.push(f), close: () => {} }));
    for (const s of subs) hub.subscribe(s);
    const ids = Array.from({ length: 1000 }, () => crypto.randomUUID());
    const spy = vi.spyOn(JSON, 'stringify');
    try {
      hub.publish('1:1:', '2:2:', ids, false, Date.now());
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
    expect(frames).toHaveLength(500);
    expect(new Set(frames).size).toBe(1);
    const text = new TextDecoder().decode(frames[0]);
    expect(text.startsWith('event: changes\ndata: ')).toBe(true);
    expect((JSON.parse(text.slice('event: changes\ndata: '.length)) as FeedEvent).ids).toEqual(ids);
  });

  it('refuses subscribers beyond maxSubscribers and after close()', () => {
    const hub = new Hub(2);
    const s = (): Subscriber => ({ push: () => {}, close: () => {} });
    const u1 = hub.subscribe(s());
    expect(hub.subscribe(s())).toBeDefined();
    expect(hub.subscribe(s())).toBeUndefined();
    u1?.();
    expect(hub.subscribe(s())).toBeDefined();
    hub.close();
    expect(hub.subscriberCount).toBe(0);
    expect(hub.subscribe(s())).toBeUndefined();
  });

  it('drops a subscriber that reads nothing once its queue is full, and nothing is buffered beyond the bound', async () => {
    const hub = new Hub();
    hub.publish(null, '1:1:', [], true, Date.now());
    let ended: string | undefined;
    const sub = openSubscriberStream(hub, { onEnd: (r) => (ended = r) });
    expect(sub).toBeDefined();
    sub?.begin(new TextEncoder().encode('event: changes\ndata: {}\n\n'));
    publishMany(hub, MAX_SUBSCRIBER_QUEUE);
    expect(ended).toBeUndefined();
    expect(hub.subscriberCount).toBe(1);
    publishMany(hub, 1);
    expect(ended).toBe('slow');
    expect(hub.subscriberCount).toBe(0);
    // The reader sees the stream fail: the connection is closed rather than kept for ever.
    if (sub === undefined) throw new Error('refused');
    const reader = sub.readable.getReader();
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return;
      })(),
    ).rejects.toThrow(/too slow/);
  });

  it('drops a subscriber that took nothing for the write timeout while events wait, and keeps one that keeps up', async () => {
    let now = 1_000_000;
    const hub = new Hub();
    hub.publish(null, '1:1:', [], true, now);
    const ends: Record<string, string | undefined> = {};
    const stalled = openSubscriberStream(hub, { now: () => now, writeTimeoutMs: 5000, onEnd: (r) => (ends.stalled = r) });
    const reading = openSubscriberStream(hub, { now: () => now, writeTimeoutMs: 5000, onEnd: (r) => (ends.reading = r) });
    const first = new TextEncoder().encode('event: changes\ndata: {}\n\n');
    stalled?.begin(first);
    reading?.begin(first);
    if (reading === undefined) throw new Error('refused');
    const reader = reading.readable.getReader();
    await reader.read(); // the first event
    for (let i = 0; i < 10; i++) {
      const next = reader.read(); // waiting: the next event goes straight to it
      now += 1000;
      publishMany(hub, 1);
      expect((await next).done).toBe(false);
    }
    expect(ends.stalled).toBe('slow');
    expect(ends.reading).toBeUndefined();
    expect(hub.subscriberCount).toBe(1);
    hub.close();
    expect(ends.reading).toBe('closed');
    expect((await reader.read()).done).toBe(true);
  });
});

describe('the push stream of a running worker', () => {
  let admin: pg.Pool;
  let schemaName: string;
  const workers: RunningWorker[] = [];
  const start = async (o: Partial<WorkerOptions> = {}) => {
    const w = await startWorker({
      databaseUrl: databaseUrl(),
      secret: SECRET,
      port: 0,
      schemaName,
      log: 'silent',
      lastAccessUpdateInterval: 3_600_000,
      ...o,
    });
    workers.push(w);
    await w.ready();
    return w;
  };
  /** Opens a stream and resolves once its first event arrived; `close` aborts it. */
  const openStream = async (w: RunningWorker) => {
    const ac = new AbortController();
    const res = await fetch(`${w.url}/v1/stream`, { headers: auth, signal: ac.signal });
    if (res.status !== 200) return { res, close: () => ac.abort(), ended: Promise.resolve() };
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const ended = (async () => {
      try {
        while (!(await reader.read()).done);
      } catch {}
    })();
    return { res, close: () => ac.abort(), ended };
  };

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    schemaName = uniqueSchema('wstream');
    await migrate(drizzle(admin), { schemaName });
  });
  afterAll(async () => {
    for (const w of workers) await w.close();
    await dropSchema(admin, schemaName);
    await admin.end();
  });

  it('answers 503 TOO_MANY_SUBSCRIBERS with Retry-After beyond maxSubscribers, and takes one again when a slot frees', async () => {
    const w = await start({ maxSubscribers: 3 });
    const open = await Promise.all([openStream(w), openStream(w), openStream(w)]);
    for (const s of open) expect(s.res.status).toBe(200);
    const refused = await fetch(`${w.url}/v1/stream`, { headers: auth });
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_SUBSCRIBERS');
    open[0]?.close();
    const deadline = Date.now() + 5000;
    let again = await openStream(w);
    while (again.res.status !== 200 && Date.now() < deadline) {
      await sleep(20);
      again = await openStream(w);
    }
    expect(again.res.status).toBe(200);
    for (const s of [...open, again]) s.close();
  });

  it('serializes each read of the record once for all its subscribers, not once per subscriber', async () => {
    const w = await start({ pollInterval: 20 });
    const streams = await Promise.all(Array.from({ length: 40 }, () => openStream(w)));
    for (const s of streams) expect(s.res.status).toBe(200);
    const reads = async () => {
      const text = await (await fetch(`${w.url}/metrics`, { headers: auth })).text();
      return Number(/^pges_feed_reads_total (\S+)$/m.exec(text)?.[1]);
    };
    const r0 = await reads();
    const spy = vi.spyOn(JSON, 'stringify');
    await sleep(500);
    const calls = spy.mock.calls.length;
    spy.mockRestore();
    const r1 = await reads();
    for (const s of streams) s.close();
    expect(r1 - r0).toBeGreaterThan(5);
    // One per read (plus a little slack for the reads in flight at either end), where it was 40 per read.
    expect(calls).toBeLessThanOrEqual(r1 - r0 + 3);
  });

  it('closes every stream on shutdown through one path: no MaxListenersExceededWarning with many streams', async () => {
    const w = await start();
    const warnings: Error[] = [];
    const onWarning = (e: Error) => warnings.push(e);
    process.on('warning', onWarning);
    try {
      const streams = await Promise.all(Array.from({ length: 30 }, () => openStream(w)));
      for (const s of streams) expect(s.res.status).toBe(200);
      await w.close();
      // Every stream ends (the server could not close otherwise).
      await Promise.all(streams.map((s) => s.ended));
      await sleep(50);
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((e) => e.name === 'MaxListenersExceededWarning')).toEqual([]);
  });
});
