// startWorker(): wiring, timers and graceful shutdown. Also the CLI entry (bin: pg-edge-session-worker).
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { sql } from 'drizzle-orm';
import { ConfigError, classifyDatabaseError, describeError } from '../src/errors.ts';
import { channelName } from '../src/feed.ts';
import { migrate } from '../src/migrate.ts';
import { objectNames } from '../src/names.ts';
import { Store } from '../src/store.ts';
import { createWorkerApp } from './app.ts';
import { runCleanup } from './cleanup.ts';
import { HELP, parseCli, resolveWorkerOptions, type WorkerOptions } from './config.ts';
import { connectWorkerDb } from './db.ts';
import { Hub } from './hub.ts';
import { Listener } from './listen.ts';
import { jsonLogger } from './log.ts';
import { createMetrics } from './metrics.ts';
import { TouchBuffer } from './touches.ts';

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
  runCleanup(): ReturnType<typeof runCleanup>;
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
        await db.pool.execute(sql.raw(`SELECT 1 FROM ${names.sessions}, ${names.changes} LIMIT 0`));
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
  const metrics = createMetrics();
  const hub = new Hub(o.maxSubscribers);
  // Cleanup is skipped while the listener is idle (it would wake the database for nobody) and runs once
  // traffic wakes it again; pending touches are written before it goes idle.
  let cleanupDue = false;
  let cleanupRunning: Promise<unknown> = Promise.resolve();
  const listener: Listener = new Listener(o, db, names, channelName(names), hub, metrics, log, {
    beforeSleep: async () => {
      await cleanupRunning;
      await touches.flush();
    },
    afterWake: () => {
      if (!cleanupDue) return;
      cleanupDue = false;
      void cleanup();
    },
  });
  const touches = new TouchBuffer(
    new Store(db.pool, names),
    o.lastAccessUpdateBatchSize,
    o.maxPendingTouches,
    o.inactivityDuration,
    metrics,
    log,
  );
  const shutdown = new AbortController();
  let accepting = true;
  const app = createWorkerApp({
    o,
    db,
    names,
    hub,
    listener,
    touches,
    metrics,
    log,
    accepting: () => accepting,
  });

  listener.start();
  const timers: ReturnType<typeof setInterval>[] = [];
  timers.push(setInterval(() => touches.flush().catch(() => {}), o.lastAccessUpdateInterval));
  const cleanup = () => {
    const run = runCleanup(o, db, names, metrics, log, shutdown.signal).catch((err) => {
      log('warn', 'cleanup failed', { err });
      return { ran: false, sessions: 0, attributes: 0, changes: 0, longestBatchMs: 0 };
    });
    cleanupRunning = run;
    return run;
  };
  timers.push(
    setInterval(() => {
      if (listener.resting) cleanupDue = true;
      else void cleanup();
    }, o.cleanupInterval),
  );
  const firstCleanup = cleanup();

  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: o.port, hostname: o.host }, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  log('info', 'worker listening', { url, schema: o.schemaName, prefix: o.tablePrefix, driver: o.driver });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    ready: () => listener.whenReady(),
    flushTouches: () => touches.flush(),
    runCleanup: cleanup,
    listener,
    get pendingTouches() {
      return touches.size;
    },
    close: () => {
      closing ??= (async () => {
        accepting = false;
        shutdown.abort();
        hub.close(); // ends every stream, so server.close() below is not held open by them
        for (const t of timers) clearInterval(t);
        // A stream that just ended leaves an idle keep-alive connection behind, which server.close() (closing
        // only the connections idle at the call) would wait out for the keep-alive timeout: close those too.
        const idle = setInterval(() => (server as { closeIdleConnections?: () => void }).closeIdleConnections?.(), 20);
        await new Promise<void>((r) => server.close(() => r()));
        clearInterval(idle);
        // Every pending touch is written before exit; a failing database gets a few retries.
        for (let attempt = 0; attempt < 5 && touches.size > 0; attempt++) {
          await touches.flush().catch(() => new Promise((r) => setTimeout(r, 200 * (attempt + 1))));
        }
        if (touches.size > 0) log('error', 'exiting with unwritten touches', { pending: touches.size });
        await firstCleanup.catch(() => {});
        await listener.stop();
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
