// Touches from isolates, coalesced in memory (per session the newest and the oldest access since the last
// flush; the oldest as bounded by parseTouches in ./app.ts) and written every interval in batches, one statement each, with GREATEST so last_accessed never
// moves backwards, and never extending a session that was idle-expired when its run of accesses began. A
// failed batch goes back into the buffer and is retried at the next flush.
import { singleFlight } from '../core/single-flight.ts';
import type { Store, TouchEntry } from '../db/store.ts';
import type { Logger } from './log.ts';
import type { HostMetrics } from './metrics.ts';

export class TouchBuffer {
  /** id → [last, first] (first may lie after last: see parseTouches) */
  #pending = new Map<string, [number, number]>();
  /** The flush under way, shared by the calls made while it runs. */
  readonly #flushing = singleFlight(() => this.#flush());

  constructor(
    private readonly store: Store,
    private readonly batchSize: number,
    private readonly maxPending: number,
    /** The sessions' idle timeout (inactivityDuration; 0 = none): flushes never extend an idle-expired session. */
    private readonly idleMs: number,
    private readonly metrics: HostMetrics,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.#pending.size;
  }

  /** Adds touches; returns false (nothing added) when the buffer is full. */
  add(touches: readonly TouchEntry[]): boolean {
    if (this.#pending.size + touches.length > this.maxPending) return false;
    for (const t of touches) this.#merge(t);
    this.metrics.touchesReceived.inc(touches.length);
    this.metrics.pendingTouches.set(this.#pending.size);
    return true;
  }

  /**
   * Adds a run to the pending one of `id`. The flush tests only the merged run's first access against the
   * idle timeout, so two runs become one only when the later one began before the earlier one's last access
   * could have idled out (one continuous run); otherwise the run with the newer last access is kept alone
   * (the other one's last access + the idle timeout lies before that run began, so it could not keep the
   * session alive until then). Without this, a run held here (a failed flush, a long flush interval) would
   * lend its early first access to a run that arrives after the session idled out.
   */
  #merge([id, last, first = last]: TouchEntry): void {
    const cur = this.#pending.get(id);
    if (cur === undefined) {
      this.#pending.set(id, [last, first]);
      return;
    }
    const [earlierLast, laterFirst] = cur[1] <= first ? [cur[0], first] : [last, cur[1]];
    if (this.idleMs !== 0 && laterFirst >= earlierLast + this.idleMs) {
      if (last > cur[0]) {
        cur[0] = last;
        cur[1] = first;
      }
      return;
    }
    if (last > cur[0]) cur[0] = last;
    if (first < cur[1]) cur[1] = first;
  }

  /** Writes everything pending. Concurrent calls share one flush. Throws if a batch failed (kept for retry). */
  flush(): Promise<void> {
    return this.#flushing();
  }

  async #flush(): Promise<void> {
    if (this.#pending.size === 0) return;
    const all: TouchEntry[] = [];
    for (const [id, [last, first]] of this.#pending) all.push([id, last, first]);
    this.#pending = new Map();
    const end = this.metrics.flushDuration.startTimer();
    let i = 0;
    try {
      for (; i < all.length; i += this.batchSize) {
        const rows = await this.store.flushTouches(all.slice(i, i + this.batchSize), Date.now(), this.idleMs === 0 ? null : this.idleMs);
        this.metrics.flushBatches.inc();
        this.metrics.flushRows.inc(rows);
      }
    } catch (err) {
      this.metrics.flushFailures.inc();
      for (const t of all.slice(i)) this.#merge(t);
      this.log('warn', 'touch flush failed; will retry', { err, pending: this.#pending.size });
      throw err;
    } finally {
      end();
      this.metrics.pendingTouches.set(this.#pending.size);
    }
  }
}
