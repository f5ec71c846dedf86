// SyncClient against misbehaving and against real workers: a stream that goes silent is dropped and
// reconnected (a plain HTTP server of the test's own, no database), and touch pushes are cut to what the
// worker accepts (a real worker).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import { type FeedEvent, MAX_TOUCH_BODY_BYTES } from '../../src/protocol.ts';
import { SyncClient } from '../../src/sync/client.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

const SECRET = 'sync-client-secret-0123456789-abcdefghij';

/** A manager that must not touch the database in these tests. */
function offlineManager(): SessionManager {
  return new SessionManager({
    execute: async () => {
      throw new Error('this test reads nothing from the database');
    },
  });
}

describe('SyncClient options', () => {
  const workerUrl = 'http://127.0.0.1:9';
  const bad: [string, unknown][] = [
    ['syncInterval', -1],
    ['syncInterval', Number.NaN],
    ['syncInterval', '250'],
    ['syncInterval', Number.POSITIVE_INFINITY],
    ['requestTimeout', 0],
    ['requestTimeout', 2 ** 31], // setTimeout would run it at once
    ['requestTimeout', '2000'],
    ['touchInterval', -1],
    ['touchInterval', 2 ** 31],
    ['streamIdleTimeout', 0],
    ['streamIdleTimeout', 'soon'],
    ['touchFallbackInterval', -5],
    ['touchFallbackInterval', Number.NaN],
    ['mode', 'push'],
    ['directFallback', 'no'],
    ['insecureHttp', 'yes'],
    ['secret', 42],
    ['fetch', 'https://w.example'],
    ['onApply', true],
    ['onError', 'log'],
    // A typo is refused, not ignored (the option it meant keeps its default otherwise).
    ['syncIntervall', 250],
    ['requestTimeOut', 100],
  ];

  it.each(bad)('refuses %s = %s with a ConfigError naming it, and leaves the manager as it was', (option, value) => {
    const m = offlineManager();
    const taken = vi.spyOn(m, '_touchesTakenBySync');
    let error: unknown;
    try {
      new SyncClient(m, { workerUrl, [option]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe(option);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    expect((error as Error).message).toContain(`"${option}"`);
    expect(taken).not.toHaveBeenCalled();
  });

  it("refuses options that are not an object, and checks a binding target's insecureHttp and objectName", () => {
    const fetcher = { fetch: async () => new Response('{}') };
    const ns = { idFromName: (n: string) => n, get: () => fetcher };
    const cases: [unknown, string][] = [
      ['https://w.example', 'options'],
      [null, 'options'],
      [[{ workerUrl }], 'options'],
      [{ fetcher, insecureHttp: 1 }, 'insecureHttp'],
      [{ durableObject: ns, objectName: 7 }, 'objectName'],
    ];
    for (const [options, option] of cases) {
      const m = offlineManager();
      const taken = vi.spyOn(m, '_touchesTakenBySync');
      expect(() => new SyncClient(m, options as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', option }));
      expect(taken).not.toHaveBeenCalled();
    }
  });

  it('accepts the bounds: 0 for the intervals (touchInterval 0: after every response), up to 2^31 - 1 ms for the timers', () => {
    const m = offlineManager();
    const options = {
      workerUrl,
      syncInterval: 0,
      touchFallbackInterval: 0,
      requestTimeout: 2 ** 31 - 1,
      touchInterval: 0,
      streamIdleTimeout: 2 ** 31 - 1,
      mode: 'stream',
      directFallback: false,
      insecureHttp: false,
    } as const;
    expect(() => new SyncClient(m, options)).not.toThrow();
    expect(() => new SyncClient(offlineManager(), { workerUrl })).not.toThrow();
  });
});

describe('SyncClient stream mode', () => {
  it('reconnects when the stream goes silent (half-open connection)', async () => {
    let connections = 0;
    const server = createServer((req, res) => {
      connections++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // one event, then silence
      res.write(`event: changes\ndata: ${JSON.stringify({ from: '', cursor: '10:10:', ids: [], reset: true, freshAsOf: Date.now() })}\n\n`);
      req.on('close', () => res.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const errors: unknown[] = [];
    const sync = new SyncClient(offlineManager(), {
      workerUrl: url,
      mode: 'stream',
      streamIdleTimeout: 200,
      directFallback: false,
      onError: (e) => errors.push(e),
    });
    sync.start();
    const deadline = Date.now() + 5000;
    while (connections < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await sync.stop();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    expect(connections).toBeGreaterThanOrEqual(3);
    expect(sync.cursor).toBe('10:10:');
    expect(errors.some((e) => String((e as Error)?.message ?? e).includes('silent'))).toBe(true);
  });
});

describe("SyncClient stream parsing and reconnects (a worker of the test's own)", () => {
  /** An HTTP server whose handler the test writes; resolves its base URL. */
  async function fakeWorker(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
    let n = 0;
    const server = createServer((req, res) => handler(req, res, n++));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }
  const event = (e: Partial<FeedEvent>) =>
    JSON.stringify({ from: '', cursor: '10:10:', ids: [], reset: false, freshAsOf: Date.now(), now: Date.now(), ...e });

  it('parses the stream as the SSE spec says: CRLF and CR line ends, comments, id:, retry:, multi-line data, split chunks', async () => {
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    const w = await fakeWorker((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const first = event({ cursor: '11:11:', reset: true });
      const second = event({ from: '11:11:', cursor: '12:12:', ids: [a] });
      // The same JSON over two data: lines is joined with a newline, which JSON ignores.
      const third = event({ from: '12:12:', cursor: '13:13:', ids: [b] }).replace(',"cursor"', '\ndata: ,"cursor"');
      const text =
        ': a comment, then a heartbeat\r\n\r\n' +
        `id: 1\r\nevent: changes\r\ndata: ${first}\r\n\r\n` +
        `retry: 60000\revent: changes\rid: 2\rdata: ${second}\r\r` +
        `event: changes\ndata: ${third}\n\n`;
      // Cut into pieces of 7 bytes: every boundary lands somewhere inside a line or an event.
      let i = 0;
      const tick = setInterval(() => {
        if (i >= text.length) return clearInterval(tick);
        res.write(text.slice(i, i + 7));
        i += 7;
      }, 0);
      req.on('close', () => clearInterval(tick));
    });
    const applied: { ids: string[]; reset: boolean }[] = [];
    const sync = new SyncClient(offlineManager(), {
      workerUrl: w.url,
      mode: 'stream',
      directFallback: false,
      onApply: (c) => applied.push({ ids: c.ids, reset: c.reset }),
    });
    sync.start();
    const deadline = Date.now() + 5000;
    while (sync.cursor !== '13:13:' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await sync.stop();
    await w.close();
    expect(applied).toEqual([
      { ids: [], reset: true },
      { ids: [a], reset: false },
      { ids: [b], reset: false },
    ]);
    expect(sync.cursor).toBe('13:13:');
  });

  it('waits the Retry-After of a refused stream before reconnecting, and polls meanwhile', async () => {
    const connects: number[] = [];
    let polls = 0;
    const w = await fakeWorker((req, res) => {
      if (req.url?.startsWith('/v1/changes')) {
        polls++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(event({ cursor: '20:20:', reset: true }));
        return;
      }
      connects.push(Date.now());
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end('{"error":{"code":"TOO_MANY_SUBSCRIBERS","message":"full"}}');
    });
    const m = offlineManager();
    const sync = new SyncClient(m, { workerUrl: w.url, mode: 'stream', directFallback: false, syncInterval: 50, onError: () => {} });
    sync.start();
    const deadline = Date.now() + 5000;
    while (connects.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // While the stream is refused, a read polls (inline when the cache is not fresh).
    const due = sync.beforeRead();
    expect(due.promise).toBeDefined();
    await due.promise;
    await sync.stop();
    await w.close();
    expect(connects.length).toBeGreaterThanOrEqual(2);
    expect((connects[1] as number) - (connects[0] as number)).toBeGreaterThanOrEqual(950);
    expect(polls).toBeGreaterThanOrEqual(1);
    expect(sync.cursor).toBe('20:20:');
  });

  it('waits the retry: the stream asked for before reconnecting', async () => {
    const connects: number[] = [];
    const w = await fakeWorker((_req, res) => {
      connects.push(Date.now());
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`retry: 700\nevent: changes\ndata: ${event({ cursor: '30:30:', reset: true })}\n\n`);
    });
    const sync = new SyncClient(offlineManager(), { workerUrl: w.url, mode: 'stream', directFallback: false });
    sync.start();
    const deadline = Date.now() + 5000;
    while (connects.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await sync.stop();
    await w.close();
    expect((connects[1] as number) - (connects[0] as number)).toBeGreaterThanOrEqual(650);
  });
});

describe('SyncClient touch pushes against a real worker', () => {
  let admin: pg.Pool;
  let schemaName: string;
  let worker: RunningWorker;
  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    schemaName = uniqueSchema('syncc');
    await migrate(drizzle(admin), { schemaName });
    worker = await startWorker({
      databaseUrl: databaseUrl(),
      secret: SECRET,
      port: 0,
      schemaName,
      log: 'silent',
      lastAccessUpdateInterval: 3_600_000,
    });
    await worker.ready();
  });
  afterAll(async () => {
    await worker?.close();
    await dropSchema(admin, schemaName);
    await admin.end();
  });

  // Before: 20,000 touches per POST made 1,100,013 bytes, over the worker's 1 MiB limit: every push
  // under load bounced, and touches reached the database only through the once-a-minute direct fallback.
  it('batches touches by bytes under the worker body limit: 50,000 pending touches all accepted, none bounced', async () => {
    const m = offlineManager();
    const now = Date.now();
    m.restoreTouches(Array.from({ length: 50_000 }, (_, i) => [crypto.randomUUID(), now - i, now - 2 * i] as [string, number, number]));
    const bodies: number[] = [];
    const errors: unknown[] = [];
    const sync = new SyncClient(m, {
      workerUrl: worker.url,
      secret: SECRET,
      onError: (e) => errors.push(e),
      fetch: (input, init) => {
        if (typeof init?.body === 'string') bodies.push(new TextEncoder().encode(init.body).length);
        return fetch(input, init);
      },
    });
    await sync.pushTouches();
    expect(errors).toEqual([]);
    expect(m.pendingTouchCount).toBe(0);
    expect(worker.pendingTouches).toBe(50_000);
    expect(bodies.length).toBeGreaterThan(1);
    for (const b of bodies) expect(b).toBeLessThanOrEqual(MAX_TOUCH_BODY_BYTES);
  });
});

describe('SyncClient through a binding (durableObject or fetcher instead of workerUrl)', () => {
  it('takes exactly one target: none, or two, is a ConfigError naming the option', () => {
    const m = offlineManager();
    const fetcher = { fetch: async () => new Response('{}') };
    const ns = { idFromName: (n: string) => n, get: () => fetcher };
    expect(() => new SyncClient(m, {})).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', option: 'workerUrl' }));
    expect(() => new SyncClient(m, { workerUrl: 'https://w.example', durableObject: ns })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', option: 'durableObject' }),
    );
    expect(() => new SyncClient(m, { durableObject: {} as never })).toThrow(expect.objectContaining({ option: 'durableObject' }));
    expect(() => new SyncClient(m, { fetcher: {} as never })).toThrow(expect.objectContaining({ option: 'fetcher' }));
    expect(() => new SyncClient(m, { durableObject: ns, objectName: '' })).toThrow(expect.objectContaining({ option: 'objectName' }));
    // exactOptionalPropertyTypes: an explicitly undefined secret is accepted.
    expect(() => new SyncClient(m, { durableObject: ns, secret: undefined })).not.toThrow();
  });

  it('sends the same protocol to the object named objectName: polls the feed, pushes touches', async () => {
    const seen: { object: unknown; method: string; url: string; body: string }[] = [];
    const ns = {
      idFromName: (name: string) => ({ name }),
      get: (id: unknown) => ({
        fetch: async (req: Request) => {
          seen.push({ object: id, method: req.method, url: req.url, body: await req.text() });
          if (req.method === 'POST') return Response.json({ accepted: 1 });
          return Response.json({
            cursor: '20:20:',
            ids: ['11111111-1111-4111-8111-111111111111'],
            reset: false,
            freshAsOf: Date.now(),
            now: Date.now(),
          });
        },
      }),
    };
    const m = offlineManager();
    const applied: string[][] = [];
    const sync = new SyncClient(m, { durableObject: ns, objectName: 'sessions-eu', onApply: (c) => applied.push(c.ids) });
    await sync.sync();
    expect(sync.cursor).toBe('20:20:');
    expect(applied).toEqual([['11111111-1111-4111-8111-111111111111']]);
    await sync.sync();
    const at = Date.now();
    m.restoreTouches([['11111111-1111-4111-8111-111111111111', at]]);
    await sync.pushTouches();
    expect(seen.map((s) => [s.method, s.url])).toEqual([
      ['GET', 'https://pg-edge-session.sync/v1/changes'],
      ['GET', 'https://pg-edge-session.sync/v1/changes?after=20%3A20%3A'],
      ['POST', 'https://pg-edge-session.sync/v1/touches'],
    ]);
    expect(seen.every((s) => (s.object as { name: string }).name === 'sessions-eu')).toBe(true);
    expect(JSON.parse(seen[2]?.body ?? '')).toEqual({ touches: [['11111111-1111-4111-8111-111111111111', at, at]] });
  });
});
