// The sync host's core, wired: listener → hub (the feed), touch buffer, cleanup runner and the Hono app, with
// the rules that tie them together (idle: flush before sleeping, run the skipped cleanup on waking; shutdown:
// stop accepting, end streams, write every pending touch). Hosts add only what differs: how connections are
// made, what schedules the flush and the cleanup (timers in the Node worker, alarms in the Durable Object) and
// how requests arrive (a Node HTTP server, the object's fetch).
import type { Hono } from 'hono';
import { channelName } from '../db/feed.ts';
import { objectNames } from '../db/names.ts';
import { Store } from '../db/store.ts';
import { createHostApp } from './app.ts';
import { type CleanupRun, runCleanup } from './cleanup.ts';
import type { HostDb } from './db.ts';
import { Hub } from './hub.ts';
import { Listener } from './listen.ts';
import type { Logger } from './log.ts';
import type { HostMetrics } from './metrics.ts';
import type { ResolvedHostOptions } from './options.ts';
import { TouchBuffer } from './touches.ts';

export interface SyncCoreDeps {
  db: HostDb;
  metrics: HostMetrics;
  log: Logger;
}

export interface SyncCore {
  readonly app: Hono;
  readonly hub: Hub;
  readonly listener: Listener;
  readonly touches: TouchBuffer;
  /** Starts the listener (its first read catches up from `listener.resumeFrom`'s cursor, if any). */
  start(): void;
  /** Writes pending touches now (concurrent calls share one flush). Throws if a batch failed (kept for retry). */
  flushTouches(): Promise<void>;
  /** Runs one cleanup now (skipped when another host holds the lock). Never throws: a failure is logged. */
  runCleanup(): Promise<CleanupRun>;
  /**
   * The cleanup interval elapsed: runs it, or, while the listener is idle (it would wake the database for
   * nobody), remembers it and runs it when traffic wakes the listener. Returns the run, if one started.
   */
  cleanupDue(): Promise<CleanupRun> | undefined;
  /** False once `beginShutdown()` ran: new streams and touches are refused, answers close their connection. */
  readonly accepting: boolean;
  /** Stops accepting, ends every stream, cuts a running cleanup short between two statements. */
  beginShutdown(): void;
  /** After the host stopped taking requests: writes every pending touch (a few retries), stops the listener. */
  finishShutdown(): Promise<void>;
}

const NO_RUN: CleanupRun = { ran: false, sessions: 0, attributes: 0, changes: 0, longestBatchMs: 0 };

export function createSyncCore(o: ResolvedHostOptions, { db, metrics, log }: SyncCoreDeps): SyncCore {
  const names = objectNames(o.schemaName, o.tablePrefix);
  const hub = new Hub(o.maxSubscribers);
  const shutdown = new AbortController();
  let accepting = true;
  let pendingCleanup = false;
  let cleanupRunning: Promise<unknown> = Promise.resolve();
  const touches = new TouchBuffer(
    new Store(db.pool, names),
    o.lastAccessUpdateBatchSize,
    o.maxPendingTouches,
    o.inactivityDuration,
    metrics,
    log,
  );
  const cleanup = (): Promise<CleanupRun> => {
    const run = runCleanup(o, db, names, metrics, log, shutdown.signal).catch((err) => {
      log('warn', 'cleanup failed', { err });
      return NO_RUN;
    });
    cleanupRunning = run;
    return run;
  };
  const listener: Listener = new Listener(o, db, names, channelName(names), hub, metrics, log, {
    beforeSleep: async () => {
      await cleanupRunning;
      await touches.flush();
    },
    afterWake: () => {
      if (!pendingCleanup) return;
      pendingCleanup = false;
      void cleanup();
    },
  });
  const app = createHostApp({ o, db, names, hub, listener, touches, metrics, log, accepting: () => accepting });
  return {
    app,
    hub,
    listener,
    touches,
    start: () => listener.start(),
    flushTouches: () => touches.flush(),
    runCleanup: cleanup,
    cleanupDue: () => {
      if (listener.resting) {
        pendingCleanup = true;
        return undefined;
      }
      return cleanup();
    },
    get accepting() {
      return accepting;
    },
    beginShutdown: () => {
      accepting = false;
      shutdown.abort();
      hub.close();
    },
    finishShutdown: async () => {
      // Every pending touch is written before exit; a failing database gets a few retries.
      for (let attempt = 0; attempt < 5 && touches.size > 0; attempt++) {
        await touches.flush().catch(() => new Promise((r) => setTimeout(r, 200 * (attempt + 1))));
      }
      if (touches.size > 0) log('error', 'exiting with unwritten touches', { pending: touches.size });
      await cleanupRunning.catch(() => {});
      await listener.stop();
    },
  };
}
