// SyncClient against misbehaving and against real workers: a stream that goes silent is dropped and
// reconnected (a plain HTTP server of the test's own, no database), and touch pushes are cut to what the
// worker accepts (a real worker).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionManager } from '../src/manager.ts';
import { migrate } from '../src/migrate.ts';
import { MAX_TOUCH_BODY_BYTES } from '../src/protocol.ts';
import { SyncClient } from '../src/sync.ts';
import { type RunningWorker, startWorker } from '../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from './support/db.ts';

const SECRET = 'sync-client-secret-0123456789-abcdefghij';

/** A manager that must not touch the database in these tests. */
function offlineManager(): SessionManager {
  return new SessionManager({
    execute: async () => {
      throw new Error('this test reads nothing from the database');
    },
  });
}

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

  // Issue 10: 20,000 touches per POST made 1,100,013 bytes, over the worker's 1 MiB limit: every push
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
