// Touches from isolates, coalesced in memory (newest time per session) and written every interval in
// batches, one statement each, with GREATEST so last_accessed never moves backwards. A failed batch
// goes back into the buffer and is retried at the next flush.
import type { Store } from '../src/store.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';

export class TouchBuffer {
  #pending = new Map<string, number>();
  #flushing: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly batchSize: number,
    private readonly maxPending: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.#pending.size;
  }

  /** Adds touches; returns false (nothing added) when the buffer is full. */
  add(touches: [string, number][]): boolean {
    if (this.#pending.size + touches.length > this.maxPending) return false;
    for (const [id, at] of touches) {
      const cur = this.#pending.get(id);
      if (cur === undefined || at > cur) this.#pending.set(id, at);
    }
    this.metrics.touchesReceived.inc(touches.length);
    this.metrics.pendingTouches.set(this.#pending.size);
    return true;
  }

  /** Writes everything pending. Concurrent calls share one flush. Throws if a batch failed (kept for retry). */
  flush(): Promise<void> {
    if (this.#flushing === undefined) {
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined;
      });
    }
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    if (this.#pending.size === 0) return;
    const all = [...this.#pending];
    this.#pending = new Map();
    const end = this.metrics.flushDuration.startTimer();
    let i = 0;
    try {
      for (; i < all.length; i += this.batchSize) {
        const rows = await this.store.flushTouches(all.slice(i, i + this.batchSize));
        this.metrics.flushBatches.inc();
        this.metrics.flushRows.inc(rows);
      }
    } catch (err) {
      this.metrics.flushFailures.inc();
      for (const [id, at] of all.slice(i)) {
        const cur = this.#pending.get(id);
        if (cur === undefined || at > cur) this.#pending.set(id, at);
      }
      this.log('warn', 'touch flush failed; will retry', { err, pending: this.#pending.size });
      throw err;
    } finally {
      end();
      this.metrics.pendingTouches.set(this.#pending.size);
    }
  }
}
