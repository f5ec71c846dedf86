// startWorker(): the host core (pg-edge-session/host) served by @hono/node-server, on node-postgres or Neon
// connections, with timers for the touch flush and the cleanup, and graceful shutdown. Also the CLI entry
// (bin: pg-edge-session-worker).
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { sql } from 'drizzle-orm';
import { ConfigError, classifyDatabaseError, describeError } from 'pg-edge-session';
import { type CleanupRun, createSyncCore, jsonLogger, type Listener, objectNames } from 'pg-edge-session/host';
import { migrate } from 'pg-edge-session/migrate';
import { HELP, parseCli, resolveWorkerOptions, type WorkerOptions } from './config.ts';
import { connectWorkerDb } from './db.ts';
import { createMetrics } from './metrics.ts';

export type { WorkerOptions } from './config.ts';

export interface RunningWorker {
  /** http://host:port */
  url: string;
  port: number;
  /** Resolves when the listener is connected and caught up. */
  ready(): Promise<void>;
  /** Flushes pending touches now. */
  flushTouches(): Promise<void>;
  /** Runs one cleanup now (skipped if another worker holds the lock). */
  runCleanup(): Promise<CleanupRun>;
  /** Graceful: stop accepting, close streams, flush every pending touch, close connections. */
  close(): Promise<void>;
  /** For tests and operations. */
  readonly listener: Listener;
  readonly pendingTouches: number;
}

export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const o = resolveWorkerOptions(options);
  const log = jsonLogger(o.log);
  if (o.insecureDev) log('warn', 'running WITHOUT a secret (--insecure-dev): every request is accepted; never do this in production');
  const names = objectNames(o.schemaName, o.tablePrefix);
  const db = connectWorkerDb(o);
  try {
    if (o.migrate) {
      const r = await migrate(db.pool, { schemaName: o.schemaName, tablePrefix: o.tablePrefix });
      log('info', 'migrations applied', { applied: r.applied });
    } else {
      try {
        await db.pool.execute(sql.raw(`SELECT clock_timestamp() FROM ${names.sessions}, ${names.changes} LIMIT 0`));
      } catch (e) {
        // Says which database it tried (user@host:port/db, never the password): a wrong port, an unknown
        // host, a missing database and an unknown user are told apart by the driver's message and code.
        throw classifyDatabaseError(`startup check of ${describeTarget(o.databaseUrl)}`, e, names);
      }
    }
  } catch (e) {
    await db.end().catch(() => {});
    throw e;
  }
  const core = createSyncCore(o, { db, metrics: createMetrics(), log });
  core.start();
  const timers: ReturnType<typeof setInterval>[] = [];
  timers.push(setInterval(() => core.flushTouches().catch(() => {}), o.lastAccessUpdateInterval));
  timers.push(setInterval(() => void core.cleanupDue(), o.cleanupInterval));
  void core.runCleanup();

  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: core.app.fetch, port: o.port, hostname: o.host }, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  log('info', 'worker listening', { url, schema: o.schemaName, prefix: o.tablePrefix, driver: o.driver });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    ready: () => core.listener.whenReady(),
    flushTouches: () => core.flushTouches(),
    runCleanup: () => core.runCleanup(),
    listener: core.listener,
    get pendingTouches() {
      return core.touches.size;
    },
    close: () => {
      closing ??= (async () => {
        core.beginShutdown(); // ends every stream, so server.close() below is not held open by them
        for (const t of timers) clearInterval(t);
        // A stream that just ended leaves an idle keep-alive connection behind, which server.close() (closing
        // only the connections idle at the call) would wait out for the keep-alive timeout: close those too.
        const idle = setInterval(() => (server as { closeIdleConnections?: () => void }).closeIdleConnections?.(), 20);
        await new Promise<void>((r) => server.close(() => r()));
        clearInterval(idle);
        await core.finishShutdown();
        await db.end().catch(() => {});
        log('info', 'worker stopped');
      })();
      return closing;
    },
  };
}

/** `user@host:port/database` of a connection URL: where a connection went, without its password. */
export function describeTarget(databaseUrl: string): string {
  try {
    const u = new URL(databaseUrl);
    const user = decodeURIComponent(u.username) || '(default user)';
    return `${user}@${u.hostname}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** CLI entry. Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration. */
export async function main(argv = process.argv.slice(2), env = process.env): Promise<void> {
  let options: WorkerOptions | 'help';
  try {
    options = parseCli(argv, env);
  } catch (e) {
    process.stderr.write(`pg-edge-session-worker: ${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(HELP);
    return;
  }
  let worker: RunningWorker;
  try {
    worker = await startWorker(options);
  } catch (e) {
    const code = e instanceof ConfigError ? 2 : 1;
    process.stderr.write(
      `${JSON.stringify({ t: new Date().toISOString(), level: 'error', msg: 'worker failed to start', error: describeError(e) })}\n`,
    );
    process.exit(code);
  }
  const stop = (signal: string) => {
    process.stdout.write(
      `${JSON.stringify({ t: new Date().toISOString(), level: 'info', msg: 'signal received, shutting down', signal })}\n`,
    );
    worker.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
