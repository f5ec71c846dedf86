// Local development of a Workers app on Neon's driver: `pg-edge-session ws-proxy` (bin/ws-proxy.ts, the
// library's own WebSocket-to-TCP proxy, no `ws` package) carries the driver to a plain PostgreSQL, and a
// connection that cannot be made is DATABASE_UNAVAILABLE with a hint naming the likely cause. In workerd
// (Miniflare, where the driver rejects with the WebSocket's "Network connection lost." ErrorEvent) and in
// Node. Real PostgreSQL, real sockets; the packed bin runs in test-consumers/consumers.test.ts.
import { createServer } from 'node:net';
import { Client } from '@neondatabase/serverless';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ws from 'ws';
import { type RunningWsProxy, startWsProxy } from '../../bin/ws-proxy.ts';
import { bundleWorker, COMPATIBILITY_DATE } from '../../harness/workerd.ts';
import { migrate } from '../../src/migrate.ts';
import { neonSessions } from '../../src/neon.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';

/** A loopback port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Outcome {
  ok?: boolean;
  name?: string;
  code?: string;
  message?: string;
}

describe('Neon driver against a local PostgreSQL: the ws-proxy command and the errors without it', () => {
  let admin: pg.Pool;
  let schemaName: string;
  let proxy: RunningWsProxy;
  let mf: Miniflare;
  const local = () => databaseUrl();
  /** A database URL on a loopback port where no PostgreSQL listens. */
  let deadDb: string;
  let deadProxy: string;

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    schemaName = uniqueSchema('neon_connect');
    await migrate(drizzle(admin), { schemaName });
    proxy = await startWsProxy({ port: 0 });
    const u = new URL(databaseUrl());
    u.port = String(await closedPort());
    deadDb = u.toString();
    deadProxy = `127.0.0.1:${await closedPort()}/v2`;
    mf = new Miniflare({
      modules: true,
      script: await bundleWorker(new URL('../support/neon-connect-worker.ts', import.meta.url).pathname),
      compatibilityDate: COMPATIBILITY_DATE,
    });
  }, 60_000);
  afterAll(async () => {
    await mf?.dispose();
    await proxy?.close();
    await dropSchema(admin, schemaName);
    await admin.end();
  });

  const inWorkerd = async (db: string, wsProxy?: string): Promise<Outcome> => {
    const q = new URLSearchParams({ db, schema: schemaName, ...(wsProxy === undefined ? {} : { proxy: wsProxy }) });
    return (await (await mf.dispatchFetch(`http://test/?${q}`)).json()) as Outcome;
  };

  it('workerd: through the ws-proxy command a session is created (its row is in PostgreSQL)', async () => {
    expect(await inWorkerd(local(), `127.0.0.1:${proxy.port}/v2`)).toEqual({ ok: true });
    const r = await admin.query(`SELECT count(*)::int AS n FROM "${schemaName}".sessions WHERE user_id = 'neon-connect-user'`);
    expect(r.rows[0].n).toBeGreaterThan(0);
  });

  it('workerd: a local database without wsProxy is DATABASE_UNAVAILABLE, hinting at the ws-proxy command', async () => {
    const out = await inWorkerd(local());
    expect(out).toMatchObject({ name: 'DatabaseUnavailableError', code: 'DATABASE_UNAVAILABLE' });
    expect(out.message).toContain('Network connection lost');
    expect(out.message).toContain('npx pg-edge-session ws-proxy');
    expect(out.message).toContain('NEON_WS_PROXY');
  });

  it('workerd: wsProxy naming a proxy that is not running is DATABASE_UNAVAILABLE, naming the proxy', async () => {
    const out = await inWorkerd(local(), deadProxy);
    expect(out).toMatchObject({ name: 'DatabaseUnavailableError', code: 'DATABASE_UNAVAILABLE' });
    expect(out.message).toContain(`WebSocket proxy at ${deadProxy} running`);
  });

  it('workerd: the proxy running, PostgreSQL down behind it: DATABASE_UNAVAILABLE naming the database', async () => {
    const out = await inWorkerd(deadDb, `127.0.0.1:${proxy.port}/v2`);
    expect(out).toMatchObject({ name: 'DatabaseUnavailableError', code: 'DATABASE_UNAVAILABLE' });
    expect(out.message).toContain(`PostgreSQL up at 127.0.0.1:${new URL(deadDb).port}`);
  });

  it('Node: the same proxy carries large results both ways (frames over 64 KiB), and a dead proxy is DATABASE_UNAVAILABLE', async () => {
    const client = new Client({ connectionString: local() });
    Object.assign((client as unknown as { neonConfig: object }).neonConfig, {
      webSocketConstructor: ws,
      wsProxy: (host: string, port: number) => `127.0.0.1:${proxy.port}/v2?address=${host}:${port}`,
      useSecureWebSocket: false,
      pipelineTLS: false,
      pipelineConnect: false,
      coalesceWrites: false,
    });
    await client.connect();
    try {
      const big = 'x'.repeat(200_000);
      const r = await client.query('SELECT length($1::text) AS sent, repeat($2::text, 300000) AS back', [big, 'y']);
      expect(r.rows[0].sent).toBe(200_000);
      expect(r.rows[0].back).toHaveLength(300_000);
    } finally {
      await client.end();
    }
    const { manager } = neonSessions({ databaseUrl: local(), wsProxy: deadProxy, neonConfig: { webSocketConstructor: ws } });
    const err = await manager.createSession('u').then(
      () => undefined,
      (e: unknown) => e as Outcome,
    );
    expect(err).toMatchObject({ name: 'DatabaseUnavailableError', code: 'DATABASE_UNAVAILABLE' });
    expect(err?.message).toContain(`WebSocket proxy at ${deadProxy} running`);
  });

  it('refuses targets that are not loopback (no relay) and plain HTTP requests', async () => {
    const plain = await fetch(`http://127.0.0.1:${proxy.port}/`);
    expect(plain.status).toBe(426);
    const socket = new ws(`ws://127.0.0.1:${proxy.port}/v2?address=10.0.0.1:5432`);
    const refused = await new Promise<string>((resolve) => {
      socket.on('unexpected-response', (_req, r) => resolve(String(r.statusCode)));
      socket.on('open', () => resolve('open'));
      socket.on('error', (e) => resolve(e.message));
    });
    expect(refused).toBe('403');
  });
});
