/**
 * The paced cleanup walk: expired sessions and attributes deleted in short statements (Store.cleanupDue),
 * with a pause between them that adapts to what the rest of the database is doing, then audit rows past
 * their retention. One copy, run by `SessionManager.deleteExpired` and by the sync host's cleanup
 * (src/host/cleanup.ts), which has no manager and no cache.
 */
import { InvalidArgumentError } from '../core/errors.ts';
import type { Store } from './store.ts';

export interface CleanupResult {
  sessions: number;
  attributes: number;
  /** Audit rows pruned (older than auditRetention). */
  audit: number;
  batches: number;
}

/** What a caller may ask of one run (the public options of `SessionManager.deleteExpired`). */
export interface CleanupRunOptions {
  /** Sessions read per statement at most (default: the caller's lastAccessUpdateBatchSize). */
  batchSize?: number;
  /** Pause between statements as a multiple of the statement's duration; default adaptive (see CLEANUP_PAUSE_MIN). */
  pause?: number;
  /** Ends the run between two statements (what was done is reported). */
  signal?: AbortSignal;
  /** Hears of each statement: the rows it changed ('attributes' when it only removed attributes). */
  onBatch?: (kind: 'sessions' | 'attributes', rows: number, ms: number) => void;
}

/**
 * The settings the walk needs, named as in the manager's config (src/core/config.ts); the sync host gives
 * its own options' values (src/host/cleanup.ts).
 */
export interface CleanupSettings {
  /** Batch size when the run's options give none. */
  lastAccessUpdateBatchSize: number;
  /** Idle timeout, ms; 0: none. */
  inactivityDuration: number;
  /** The grace added to the idle timeout for touches not yet written anywhere, ms. */
  lastAccessUpdateInterval: number;
  /** Re-authentication period, ms; 0: none. */
  reauthenticationPeriod: number;
  /** Record each deleted session in the audit table. */
  audit: boolean;
  /** Audit rows that ended longer ago than this are pruned, ms. */
  auditRetention: number;
}

/**
 * Pause between cleanup statements, as a multiple of the statement's duration, by default adaptive:
 * between CLEANUP_PAUSE_MIN (other sessions of the database idle: cleanup takes up to half of one
 * database core) and CLEANUP_PAUSE_MAX (other sessions running queries: cleanup keeps about 1/31, 3%, of
 * one core busy, and request-path queries keep theirs). Each cleanup statement also counts the other
 * sessions of its database that are running a query at that moment (pg_stat_activity): one seen sets the
 * full pause, and the pause relaxes towards the minimum only while statement after statement sees none,
 * so cleanup speeds up when requests stop and slows down as soon as they come back. Measured on a 2-core machine whose cores 4 readers keep
 * busy (bench/, section cleanup): reader p99 +50-330% with no pause, +10-130% at 4, +3-50% at 8, around
 * +9% (-8 to +18%) at 30.
 */
const CLEANUP_PAUSE_MIN = 1;
const CLEANUP_PAUSE_MAX = 30;

/**
 * How long one cleanup statement should take, ms: the statement's row limit follows it, so that a statement
 * holds its row locks, and a core, for about that long however loaded the database is (the same rows take
 * longer while other backends share the cores). A run starts at CLEANUP_FIRST_LIMIT rows (or `batchSize`, if smaller) and sizes each next
 * statement from the one before: its rows scaled by CLEANUP_STATEMENT_MS over its duration, at most
 * doubled, at least a quarter, never over `batchSize` nor under CLEANUP_MIN_LIMIT (or `batchSize`, if
 * smaller: a small batch stays exact). The pause follows the time spent, so the pace is unchanged.
 */
const CLEANUP_STATEMENT_MS = 20;
const CLEANUP_FIRST_LIMIT = 500;
const CLEANUP_MIN_LIMIT = 100;

/** The cutoffs and audit settings every statement of one run shares. */
interface Walk {
  store: Store;
  now: number;
  o: CleanupRunOptions;
  onChanged: ((ids: string[]) => void) | undefined;
  size: number;
  idleCutoff: number | null;
  reauthCutoff: number | null;
  unsetCutoff: number;
  audit: { idleMs: number | null; reauthMs: number | null } | undefined;
  counts: { sessions: number; attributes: number; batches: number };
  /** The adaptive pace's memory (see CLEANUP_PAUSE_MIN), carried from one source to the next. */
  busy: number;
}

/**
 * Deletes what expired by `now` (the caller's clock, ms): sessions (absolutely, idle past
 * inactivityDuration + lastAccessUpdateInterval, past reauthenticationPeriod) and attributes, in statements
 * of at most `batchSize` sessions (default lastAccessUpdateBatchSize), pausing between them; then prunes
 * audit rows past auditRetention. A bad `batchSize` or `pause` is an InvalidArgumentError before any
 * statement. `onChanged` is given the ids each statement deleted or changed (a cache to invalidate); without
 * it the statements return none.
 */
export async function deleteExpired(
  store: Store,
  s: Readonly<CleanupSettings>,
  now: number,
  o: CleanupRunOptions = {},
  onChanged?: (ids: string[]) => void,
): Promise<CleanupResult> {
  const size = o.batchSize ?? s.lastAccessUpdateBatchSize;
  if (!Number.isInteger(size) || size < 1) throw new InvalidArgumentError('batchSize', 'expected an integer ≥ 1');
  const fixed = o.pause;
  if (fixed !== undefined && (typeof fixed !== 'number' || !(fixed >= 0) || fixed === Number.POSITIVE_INFINITY)) {
    throw new InvalidArgumentError('pause', 'expected a finite number ≥ 0');
  }
  const idle = s.inactivityDuration;
  const idleCutoff = idle === 0 ? null : now - idle - s.lastAccessUpdateInterval;
  const reauthCutoff = s.reauthenticationPeriod === 0 ? null : now - s.reauthenticationPeriod;
  const walk: Walk = {
    store,
    now,
    o,
    onChanged,
    size,
    idleCutoff,
    reauthCutoff,
    unsetCutoff: Math.max(idleCutoff ?? Number.NEGATIVE_INFINITY, reauthCutoff ?? Number.NEGATIVE_INFINITY),
    audit: s.audit === true ? { idleMs: idle === 0 ? null : idle, reauthMs: s.reauthenticationPeriod || null } : undefined,
    counts: { sessions: 0, attributes: 0, batches: 0 },
    // Adaptive pace: starts gentle, as if the database were busy.
    busy: 1,
  };
  // Sessions whose cleanup deadline has passed (drizzle/0015), then, with an idle timeout or a
  // re-authentication period, sessions given no deadline yet that are old enough to be due by either.
  await walkSource(walk, 'due');
  if (idleCutoff !== null || reauthCutoff !== null) await walkSource(walk, 'unset');
  const audit = await pruneAudit(store, now - s.auditRetention, size, o.signal);
  const { sessions, attributes, batches } = walk.counts;
  return { sessions, attributes, audit, batches };
}

/** Statement after statement over one source of due sessions, until a batch comes back short or the run is aborted. */
async function walkSource(w: Walk, source: 'due' | 'unset'): Promise<void> {
  const { store, o, size, counts } = w;
  let more = true;
  // Where the previous statement of this source stopped in its index (cleanupDueStatement: keyset continuation).
  let after: number | undefined;
  // This source's statements start small and follow CLEANUP_STATEMENT_MS (see there).
  let limit = Math.min(size, CLEANUP_FIRST_LIMIT);
  while (more && o.signal?.aborted !== true) {
    const t0 = performance.now();
    const r = await store.cleanupDue({
      source,
      now: w.now,
      idleCutoff: w.idleCutoff,
      reauthCutoff: w.reauthCutoff,
      unsetCutoff: w.unsetCutoff,
      limit,
      after,
      audit: w.audit,
      ids: w.onChanged !== undefined,
    });
    const ms = performance.now() - t0;
    counts.batches++;
    if (r.last !== null) after = r.last;
    counts.sessions += r.deleted;
    counts.attributes += r.attributes;
    if (r.ids.length > 0) w.onChanged?.(r.ids);
    // One report per statement: the rows it changed, 'attributes' when it only removed attributes.
    o.onBatch?.(r.deleted === 0 && r.attributes > 0 ? 'attributes' : 'sessions', r.deleted + r.attributes, ms);
    // Every row picked is deleted or given a later deadline, so a full batch means there may be more;
    // fewer than the limit (locked rows are skipped) means the rest waits for the next run.
    more = r.picked >= limit;
    limit = nextLimit(limit, ms, size);
    // Any query seen running sets the full pause at once; it relaxes only as statements keep finding
    // the database otherwise idle (a fifth of the way per statement).
    w.busy = r.active > 0 ? 1 : w.busy * 0.8;
    const pause = o.pause ?? CLEANUP_PAUSE_MIN + (CLEANUP_PAUSE_MAX - CLEANUP_PAUSE_MIN) * w.busy;
    if (pause > 0 && more) await sleep(ms * pause, o.signal);
  }
}

/** The row limit of the statement after one of `limit` rows that took `ms` (see CLEANUP_STATEMENT_MS). */
export function nextLimit(limit: number, ms: number, size: number): number {
  const scaled = Math.round((limit * CLEANUP_STATEMENT_MS) / Math.max(ms, 1));
  const floor = Math.min(size, CLEANUP_MIN_LIMIT);
  return Math.max(floor, Math.min(size, limit * 2, Math.max(Math.ceil(limit / 4), scaled)));
}

/** Audit rows past their retention (also those written while `audit` was on, if it is off now). */
async function pruneAudit(store: Store, cutoff: number, size: number, signal: AbortSignal | undefined): Promise<number> {
  let audit = 0;
  while (signal?.aborted !== true) {
    const n = await store.pruneAudit(cutoff, size);
    audit += n;
    if (n < size) break;
  }
  return audit;
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
    signal?.addEventListener('abort', done, { once: true });
  });
}
