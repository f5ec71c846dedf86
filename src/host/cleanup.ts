// Expired-session cleanup, one runner at a time across replicas: the run holds a session-level advisory
// lock on one connection of its own; another worker that cannot take it skips this round.
import { sql } from 'drizzle-orm';
import { deleteExpired } from '../db/cleanup.ts';
import { rowsOf } from '../db/executor.ts';
import { pruneChanges } from '../db/feed.ts';
import type { ObjectNames } from '../db/names.ts';
import { Store } from '../db/store.ts';
import type { HostDb } from './db.ts';
import type { Logger } from './log.ts';
import type { HostMetrics } from './metrics.ts';
import type { ResolvedHostOptions } from './options.ts';

export interface CleanupRun {
  ran: boolean;
  sessions: number;
  attributes: number;
  changes: number;
  longestBatchMs: number;
}

export async function runCleanup(
  o: ResolvedHostOptions,
  db: HostDb,
  names: ObjectNames,
  metrics: HostMetrics,
  log: Logger,
  signal?: AbortSignal,
): Promise<CleanupRun> {
  const { db: conn, release } = await db.checkout();
  let destroy = false;
  const key = sql`hashtext('pg-edge-session:cleanup'), hashtext(${`${names.schemaName}.${names.tablePrefix}`})`;
  try {
    const got = rowsOf<{ ok: boolean }>(await conn.execute(sql`SELECT pg_try_advisory_lock(${key}) AS ok`))[0]?.ok === true;
    if (!got) {
      log('info', 'cleanup skipped: another worker holds the lock');
      return { ran: false, sessions: 0, attributes: 0, changes: 0, longestBatchMs: 0 };
    }
    const end = metrics.cleanupDuration.startTimer();
    let longest = 0;
    try {
      // The manager's cleanup walk (src/db/cleanup.ts) on this connection, with the host's settings; no cache.
      const store = new Store(conn, names, {
        maxPerUser: o.auditMaxPerUser,
        // Ending a session never waits on its audit row: a refused audit write is counted and logged.
        onFailure: (e) => {
          metrics.auditWriteFailures.inc(e.sessions);
          log('error', 'audit rows not written; the sessions ended all the same', { sessions: e.sessions, err: e.databaseMessage });
        },
      });
      const settings = {
        lastAccessUpdateBatchSize: o.cleanupBatchSize,
        inactivityDuration: o.inactivityDuration,
        lastAccessUpdateInterval: o.lastAccessUpdateInterval,
        // The host is given no re-authentication period (the managers' default: none).
        reauthenticationPeriod: 0,
        audit: o.audit,
        auditRetention: o.auditRetention,
      };
      // Paced (the walk's default pause), and cut short by shutdown: a long backlog never holds up exit.
      const r = await deleteExpired(store, settings, Date.now(), {
        batchSize: o.cleanupBatchSize,
        signal,
        onBatch: (_kind, _rows, ms) => {
          longest = Math.max(longest, ms);
          metrics.cleanupBatchDuration.observe(ms / 1000);
        },
      });
      const changes = await pruneChanges(conn, names, o.changeRetention, o.cleanupBatchSize * 10);
      metrics.cleanupRows.inc({ kind: 'sessions' }, r.sessions);
      metrics.cleanupRows.inc({ kind: 'attributes' }, r.attributes);
      metrics.cleanupRows.inc({ kind: 'changes' }, changes);
      log('info', 'cleanup done', { sessions: r.sessions, attributes: r.attributes, changes, longestBatchMs: longest });
      return { ran: true, sessions: r.sessions, attributes: r.attributes, changes, longestBatchMs: longest };
    } finally {
      end();
      await Promise.resolve(conn.execute(sql`SELECT pg_advisory_unlock(${key})`)).catch(() => {
        destroy = true; // the lock dies with the connection
      });
    }
  } catch (err) {
    destroy = true;
    throw err;
  } finally {
    release(destroy);
  }
}
