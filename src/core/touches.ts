/**
 * A manager's access bookkeeping ("touches"): the newest known access of each session it served (idle
 * expiry and max-sessions eviction use it), the accesses not yet written, and who writes them when. Reads
 * never write: touches are kept here and written in batches, every lastAccessUpdateInterval, off the request
 * path (see `SessionManager` in src/core/manager.ts for the three writers). The SQL is the store's.
 */
import { LRUCache } from 'lru-cache';
import type { TouchEntry } from '../db/store.ts';
import { singleFlight } from './single-flight.ts';

/** Bound on touches held in memory between flushes (ids beyond it are not recorded until a flush). */
export const MAX_PENDING_TOUCHES = 200_000;
/** Known accesses one createSession sends for eviction at most (a user has a handful of sessions). */
const MAX_KNOWN_PER_CREATE = 1000;

export interface FlushResult {
  /** Sessions whose last_accessed moved forward. */
  rows: number;
  /** Statements sent. */
  batches: number;
}

/** What a manager knows of one session's accesses (one object per session, updated in place). */
export interface Touch {
  /** The session's user ('' when only known from restored touches): indexes the per-user index. */
  readonly userId: string;
  /** Newest known access, ms. */
  at: number;
  /** Oldest access of the pending run (when `pending`), ms. */
  first: number;
  /** Pending: accessed since the touches were last taken. */
  pending: boolean;
  /** In the touch LRU (false once it dropped it): a cache entry holding it may use it without a lookup. */
  live: boolean;
}

export interface TouchTrackerOptions {
  /** The manager's clock, ms. */
  clock: () => number;
  /** Sessions whose newest access is kept (the touch LRU's bound). */
  max: number;
  /** lastAccessUpdateInterval: how long a pending touch waits for its write, ms. */
  interval: number;
  /** lastAccessUpdateBatchSize: touches per write statement. */
  batchSize: number;
  /** Idle timeout, ms (0: none), for the write's idle check. */
  inactivityDuration: number;
  /** Writes one batch (one statement); returns the sessions whose last access moved forward. */
  write: (batch: readonly TouchEntry[], now: number, idleMs: number | null) => Promise<number>;
}

/**
 * Who writes the touches: 'self' (the default: the manager, on its own unref'd timer where the runtime has
 * one, and through the middleware after responses), 'sync' (a SyncClient takes them to the sync host) or
 * 'tasks' (startBackgroundTasks' timer).
 */
type Writer = 'self' | 'sync' | 'tasks';

export class TouchTracker {
  readonly #o: TouchTrackerOptions;
  /** Newest known last access per session id (survives flushes, so idle expiry and eviction use it). */
  readonly #touched: LRUCache<string, Touch>;
  /** The touches not yet handed on (written, or taken by the sync client): a subset of #touched's values. */
  #pending = new Map<string, Touch>();
  /** Ids in #touched per user: what createSession tells max-sessions eviction about. */
  readonly #touchedByUser = new Map<string, Set<string>>();
  /** The flush under way, shared by the calls made while it runs. */
  readonly #flushing = singleFlight(() => this.#flush());
  /** When the oldest pending touch was recorded (ms, the manager's clock); +Infinity while none is pending. */
  #pendingSince = Number.POSITIVE_INFINITY;
  #writer: Writer = 'self';
  /** The lazily armed flush timer ('self' only); false once the runtime showed it has no background timers. */
  #flushTimer: ReturnType<typeof setTimeout> | undefined | false;
  /** A sessionMiddleware hands due flushes to waitUntil / the background after its responses. */
  #flushedAfterResponses = false;
  #warnedNoFlush = false;

  constructor(options: TouchTrackerOptions) {
    this.#o = options;
    this.#touched = new LRUCache<string, Touch>({
      max: options.max,
      dispose: (t, id) => {
        t.live = false;
        const ids = this.#touchedByUser.get(t.userId);
        if (ids === undefined) return;
        ids.delete(id);
        if (ids.size === 0) this.#touchedByUser.delete(t.userId);
      },
    });
  }

  /** Touches recorded and not yet written. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The newest access recorded for a session, if the touch LRU still holds one. */
  latest(id: string): number | undefined {
    return this.#touched.peek(id)?.at;
  }

  /**
   * Newest known last access: the stored one or a touch recorded since (`held`: the Touch a cache entry
   * kept, for when the touch LRU dropped it).
   */
  lastAccess(record: { id: string; lastAccessed: number }, held?: Touch): number {
    const t = this.#touched.peek(record.id) ?? held;
    return t !== undefined && t.at > record.lastAccessed ? t.at : record.lastAccessed;
  }

  /**
   * Records an access of a session just found alive. No I/O: written later, in a batch. `held`: the
   * session's Touch as a cache entry kept it, adopted again if the touch LRU dropped it (so a pending run is
   * not lost). Returns the Touch.
   */
  touch(record: { id: string; userId: string }, at: number, held?: Touch): Touch {
    const t = this.#known(record.id, record.userId, at, held);
    if (at > t.at) t.at = at;
    this.#markPending(record.id, t, at);
    return t;
  }

  /**
   * An access through a cache hit whose entry holds a live Touch: a few field writes. The touch LRU's
   * recency is refreshed when a new pending run starts (once per flush or take), which is what keeps a busy
   * session's bookkeeping from being dropped.
   */
  hit(id: string, t: Touch, now: number): void {
    if (now > t.at) t.at = now;
    if (!t.pending) this.#touched.get(id);
    this.#markPending(id, t, now);
  }

  /** The entry of a session, made (or `held` adopted) and indexed by user when missing. */
  #known(id: string, userId: string | undefined, at: number, held?: Touch): Touch {
    let t = this.#touched.get(id);
    if (t === undefined) {
      t = held ?? { userId: userId ?? '', at, first: at, pending: false, live: true };
      t.live = true;
      this.#touched.set(id, t);
      // Indexed under the user the Touch was made for (dispose removes it from there).
      if (t.userId !== '') {
        const ids = this.#touchedByUser.get(t.userId);
        if (ids === undefined) this.#touchedByUser.set(t.userId, new Set([id]));
        else ids.add(id);
      }
    }
    return t;
  }

  /** Starts a pending run at `first` (or extends the one pending back to it). */
  #markPending(id: string, t: Touch, first: number): void {
    if (t.pending) {
      if (first < t.first) t.first = first;
    } else if (this.#pending.size < MAX_PENDING_TOUCHES) {
      t.pending = true;
      t.first = first;
      // Once per session per flush cycle, never on a hit of a session already pending.
      if (this.#pending.size === 0) this.#startPendingRun();
      else if (this.#flushTimer === false) this.#warnIfNeverFlushed();
      this.#pending.set(id, t);
    }
  }

  /** The first touch since the last flush: note when, and arm the flush timer (Node, Bun) if the manager writes its own. */
  #startPendingRun(): void {
    this.#pendingSince = this.#o.clock();
    this.#arm();
  }

  /** Arms the flush timer, one interval from now, if the manager writes its own touches and none is armed. */
  #arm(): void {
    if (this.#writer !== 'self' || this.#flushTimer !== undefined) return;
    const timer = setTimeout(() => {
      this.#flushTimer = undefined;
      if (this.#writer === 'self' && this.#pending.size > 0) this.flush().catch((e) => reportFlushError(e));
    }, this.#o.interval);
    const handle = timer as unknown as { unref?: unknown } | number;
    if (typeof handle === 'object' && handle !== null && typeof handle.unref === 'function') {
      // A long-lived process (Node, Bun): the timer must not keep it alive; close() writes what is left.
      handle.unref();
      this.#flushTimer = timer;
    } else {
      // No unref: a runtime whose timers do not outlive a request (Workers, Deno Deploy, Vercel Edge). The
      // middleware flushes there, after a response; nothing else would.
      clearTimeout(timer);
      this.#flushTimer = false;
    }
  }

  /**
   * On a runtime without background timers, touches kept for twice lastAccessUpdateInterval without anything
   * writing them mean nothing ever will: say so, once.
   */
  #warnIfNeverFlushed(): void {
    if (this.#warnedNoFlush || this.#writer !== 'self' || this.#flushedAfterResponses) return;
    if (this.#o.clock() - this.#pendingSince < 2 * this.#o.interval) return;
    this.#warnedNoFlush = true;
    console.warn(
      `[pg-edge-session] ${this.#pending.size} sessions' last accesses have waited ${Math.round((this.#o.clock() - this.#pendingSince) / 1000)} s ` +
        'in memory and nothing writes them: this runtime has no background timers, and this manager has no sessionMiddleware ' +
        '(which writes them after a response, through waitUntil) and no SyncClient. Use either, or call manager.flushTouches() ' +
        '(e.g. in ctx.waitUntil) every lastAccessUpdateInterval; otherwise other processes see these users as idle.',
    );
  }

  /** A SyncClient takes the touches to the sync host from now on: the manager no longer writes them. */
  takenBySync(): void {
    this.#writer = 'sync';
    this.disarm();
  }

  /** A sessionMiddleware runs `flushIfDue()` after its responses. */
  flushedAfterResponses(): void {
    this.#flushedAfterResponses = true;
  }

  /** startBackgroundTasks' timer writes the touches (unless a SyncClient takes them). */
  writtenByTasks(): void {
    if (this.#writer !== 'self') return;
    this.#writer = 'tasks';
    this.disarm();
  }

  /** startBackgroundTasks' timer stopped: the manager writes its own touches again (unless a SyncClient takes them). */
  tasksStopped(): void {
    if (this.#writer !== 'tasks') return;
    this.#writer = 'self';
    // Touches left pending by the stopped timer start no new run: arm the manager's own timer for them.
    if (this.#pending.size > 0) this.#arm();
  }

  /** Clears the self-flush timer (a runtime without background timers stays known as such). */
  disarm(): void {
    if (this.#flushTimer !== undefined && this.#flushTimer !== false) clearTimeout(this.#flushTimer);
    if (this.#flushTimer !== false) this.#flushTimer = undefined;
  }

  /** The flush when one is due: the manager writes its own touches and the oldest pending one is an interval old. */
  flushIfDue(): Promise<FlushResult> | undefined {
    if (this.#writer !== 'self' || this.#o.clock() - this.#pendingSince < this.#o.interval) return undefined;
    return this.flush();
  }

  /** Newest known accesses of a user's sessions, for max-sessions eviction (bounded). */
  knownAccesses(userId: string): [string, number][] {
    const ids = this.#touchedByUser.get(userId);
    if (ids === undefined) return [];
    const out: [string, number][] = [];
    for (const id of ids) {
      const t = this.#touched.peek(id);
      if (t !== undefined) out.push([id, t.at]);
      if (out.length >= MAX_KNOWN_PER_CREATE) break;
    }
    return out;
  }

  /** Takes the pending touches out: per session `[id, last, first]` (see `SessionManager.takePendingTouches`). */
  take(): TouchEntry[] {
    const out: TouchEntry[] = [];
    for (const [id, t] of this.#pending) {
      out.push([id, t.at, t.first]);
      t.pending = false;
    }
    this.#pending = new Map();
    this.#pendingSince = Number.POSITIVE_INFINITY;
    return out;
  }

  /** Puts touches back (the run widens to cover them), e.g. after a failed send or flush. */
  restore(touches: Iterable<TouchEntry>): void {
    for (const [id, last, first] of touches) {
      if (typeof id !== 'string' || typeof last !== 'number') continue;
      const t = this.#known(id, undefined, last);
      if (last > t.at) t.at = last;
      this.#markPending(id, t, Math.min(first ?? last, last));
    }
  }

  /**
   * Writes the pending touches in batches of `batchSize`, one statement each. On failure the unwritten
   * touches are kept and the error rethrown. Concurrent calls share one flush.
   */
  flush(): Promise<FlushResult> {
    return this.#flushing();
  }

  async #flush(): Promise<FlushResult> {
    const pending = this.take();
    const now = this.#o.clock();
    const idle = this.#o.inactivityDuration === 0 ? null : this.#o.inactivityDuration;
    const size = this.#o.batchSize;
    let rows = 0;
    let batches = 0;
    for (let i = 0; i < pending.length; i += size) {
      try {
        rows += await this.#o.write(pending.slice(i, i + size), now, idle);
        batches++;
      } catch (e) {
        this.restore(pending.slice(i));
        throw e;
      }
    }
    return { rows, batches };
  }
}

function reportFlushError(e: unknown): void {
  console.error('[pg-edge-session] writing last accesses failed (kept, retried after lastAccessUpdateInterval):', e);
}
