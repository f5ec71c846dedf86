// The worker's view of the change feed: the reads the listener made, chained by cursor, so isolates
// polling or streaming with a cursor this worker handed out are answered from memory.

import { ChangeSet } from '../core/versions.ts';
import type { FeedEvent, FeedResponse } from '../protocol.ts';

interface Entry {
  from: string;
  to: string;
  ids: string[];
  /** Beside `ids`: the version each change left its session at (FeedResponse.versions), when any is known. */
  versions: (number | null)[] | undefined;
  reset: boolean;
  freshAsOf: number;
}

/**
 * A push-stream subscriber. `frame` is the event already serialized as SSE bytes, the same instance for
 * every subscriber (serialized once per publish, never per subscriber): never modify it.
 */
export interface Subscriber {
  push(frame: Uint8Array, event: Readonly<FeedEvent>): void;
  /** The hub closed (shutdown): end the stream. */
  close(): void;
}

/** Bounds: entries kept (at 4 reads/s, ~8 minutes) and ids kept across them. */
export const MAX_ENTRIES = 2000;
export const MAX_IDS = 200_000;
/** Most ids in one answer; beyond it the answer is a reset. */
export const MAX_ANSWER_IDS = 10_000;

export class Hub {
  /** Most subscribers at once; `subscribe` refuses beyond it. */
  readonly maxSubscribers: number;
  #closed = false;
  #entries: Entry[] = [];
  #ids = 0;
  /** cursor → index in #entries of the entry that starts at it */
  #byFrom = new Map<string, Entry>();
  #latest: { cursor: string; freshAsOf: number } | undefined;
  readonly #subscribers = new Set<Subscriber>();

  constructor(maxSubscribers = Number.POSITIVE_INFINITY) {
    this.maxSubscribers = maxSubscribers;
  }

  get latest() {
    return this.#latest;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /**
   * A read by the listener: from `from` (null on the very first read) to `to`; `versions` beside `ids`
   * (ChangePage.versions, src/db/feed.ts) when the read knew any.
   */
  publish(from: string | null, to: string, ids: string[], reset: boolean, freshAsOf: number, versions?: (number | null)[]): void {
    const v = versions !== undefined && versions.length === ids.length ? versions : undefined;
    if (from !== null && from !== this.#latest?.cursor) {
      // A gap in our own chain (should not happen): make every older cursor resync through the DB.
      this.#entries = [];
      this.#byFrom.clear();
      this.#ids = 0;
    }
    // An idle database returns the same snapshot again: nothing to chain, only freshness moves.
    if (from !== null && from === to && ids.length === 0 && !reset) {
      this.#latest = { cursor: to, freshAsOf };
      this.#broadcast({ from, cursor: to, ids, reset, freshAsOf });
      return;
    }
    if (from !== null) {
      const e: Entry = { from, to, ids, versions: v, reset, freshAsOf };
      this.#entries.push(e);
      this.#byFrom.set(from, e);
      this.#ids += ids.length;
      while (this.#entries.length > MAX_ENTRIES || this.#ids > MAX_IDS) {
        const old = this.#entries.shift() as Entry;
        this.#byFrom.delete(old.from);
        this.#ids -= old.ids.length;
      }
      this.#latest = { cursor: to, freshAsOf };
      this.#broadcast(
        v === undefined ? { from, cursor: to, ids, reset, freshAsOf } : { from, cursor: to, ids, reset, freshAsOf, versions: v },
      );
      return;
    }
    this.#latest = { cursor: to, freshAsOf };
  }

  /** Serializes the event once and hands the same bytes to every subscriber. */
  #broadcast(event: FeedEvent): void {
    if (this.#subscribers.size === 0) return;
    const frame = sseFrame(event);
    for (const s of this.#subscribers) s.push(frame, event);
  }

  /** Everything after `after`, from memory; undefined when `after` is not a cursor of this worker's chain. */
  answer(after: string): FeedResponse | undefined {
    const latest = this.#latest;
    if (latest === undefined) return undefined;
    if (after === latest.cursor) return { cursor: latest.cursor, ids: [], reset: false, freshAsOf: latest.freshAsOf };
    let e = this.#byFrom.get(after);
    if (e === undefined) return undefined;
    const ids = new ChangeSet();
    let reset = false;
    // The chain is acyclic (publish never links a cursor to itself), and bounded by MAX_ENTRIES.
    for (let steps = 0; e !== undefined && steps <= MAX_ENTRIES; steps++) {
      if (e.reset) reset = true;
      ids.addAll(e.ids, e.versions);
      if (ids.size > MAX_ANSWER_IDS) reset = true;
      if (reset || e.to === latest.cursor) break;
      e = this.#byFrom.get(e.to);
    }
    const answer: FeedResponse = { cursor: latest.cursor, ids: reset ? [] : ids.ids(), reset, freshAsOf: latest.freshAsOf };
    const versions = reset ? undefined : ids.versions();
    if (versions !== undefined) answer.versions = versions;
    return answer;
  }

  /** Adds a subscriber; returns its unsubscribe, or undefined when `maxSubscribers` are there or the hub closed. */
  subscribe(s: Subscriber): (() => void) | undefined {
    if (this.#closed || this.#subscribers.size >= this.maxSubscribers) return undefined;
    this.#subscribers.add(s);
    return () => void this.#subscribers.delete(s);
  }

  /** Shutdown: ends every stream (one call, not one listener per stream) and refuses new subscribers. */
  close(): void {
    this.#closed = true;
    for (const s of [...this.#subscribers]) s.close();
    this.#subscribers.clear();
  }
}

const encoder = new TextEncoder();

/** A `changes` event as text/event-stream bytes. */
export function sseFrame(event: FeedEvent): Uint8Array {
  return encoder.encode(`event: changes\ndata: ${JSON.stringify(event)}\n\n`);
}
