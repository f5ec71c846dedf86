// A Neon Worker in workerd against the test database, for the tests of pg-edge-session/neon's connections
// (test/drivers/neon-close.test.ts, test/drivers/neon-request.test.ts): a fresh schema, the WebSocket proxy (bin/ws-proxy.ts),
// a TCP proxy between it and PostgreSQL (harness/tcp-proxy.ts: counts and holds the Worker's connections),
// and Miniflare running `worker` with DATABASE_URL (through the TCP proxy), NEON_WS_PROXY and SESSION_SCHEMA.
import { drizzle } from 'drizzle-orm/node-postgres';
import { Miniflare } from 'miniflare';
import pg from 'pg';
import { type RunningWsProxy, startWsProxy } from '../../bin/ws-proxy.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { bundleWorker, COMPATIBILITY_DATE } from '../../harness/workerd.ts';
import { migrate } from '../../src/migrate.ts';
import { databaseUrl, dropSchema, uniqueSchema } from './db.ts';

export interface NeonWorkerd {
  admin: pg.Pool;
  schemaName: string;
  /** Between the WebSocket proxy and PostgreSQL: one TCP connection per Neon connection of the Worker. */
  proxy: TcpProxy;
  mf: Miniflare;
  /** The Worker's connections open in PostgreSQL now (by its application_name). */
  open(): Promise<number>;
  close(): Promise<void>;
}

/** Starts it all; `applicationName` is the one the Worker's connections carry. */
export async function startNeonWorkerd(worker: URL, schemaPrefix: string, applicationName: string): Promise<NeonWorkerd> {
  const admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
  const schemaName = uniqueSchema(schemaPrefix);
  await migrate(drizzle(admin), { schemaName });
  const wsProxy: RunningWsProxy = await startWsProxy({ port: 0 });
  const db = new URL(databaseUrl());
  const proxy = await startTcpProxy({ host: db.hostname, port: Number(db.port || 5432) });
  db.hostname = '127.0.0.1';
  db.port = String(proxy.port);
  const mf = new Miniflare({
    modules: true,
    script: await bundleWorker(worker.pathname),
    compatibilityDate: COMPATIBILITY_DATE,
    bindings: { DATABASE_URL: db.toString(), NEON_WS_PROXY: `127.0.0.1:${wsProxy.port}/v2`, SESSION_SCHEMA: schemaName },
  });
  const open = async () =>
    Number(
      (
        await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [
          applicationName,
        ])
      ).rows[0].n,
    );
  return {
    admin,
    schemaName,
    proxy,
    mf,
    open,
    async close() {
      await mf.dispose();
      await proxy.close();
      await wsProxy.close();
      await dropSchema(admin, schemaName);
      await admin.end();
    },
  };
}
