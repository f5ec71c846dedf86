import type { SessionManager } from '../core/manager.ts';
import { feedVersions } from '../core/versions.ts';
import { type ChangePage, readChanges } from '../db/feed.ts';
import type { TouchEntry } from '../db/store.ts';
import { type FeedResponse, MAX_TOUCH_BODY_BYTES, MAX_TOUCHES_PER_BATCH, PATHS } from '../protocol.ts';
import { backoffDelay } from './backoff.ts';
import { type ResolvedSyncOptions, resolveSyncOptions, type SyncClientOptions } from './options.ts';
import { readStream } from './stream.ts';

// The option types live in src/sync/options.ts, the stream's reading in src/sync/stream.ts; importers keep
// finding the public names here.
export { BINDING_BASE_URL, type DurableObjectNamespaceLike, type FetcherLike, type SyncClientOptions } from './options.ts';

/**
 * The isolate's client of the sync worker: keeps a SessionManager's cache fresh from the change feed and
 * sends its touches to the worker. Freshness: after applying a feed answer the cache is marked fresh as
 * of the answer's `freshAsOf`; when no answer arrives the marks stop advancing and entries age out
 * after maxStaleness, so a stale session is never served, worker or no worker.
 */
export class SyncClient {
  // biome-ignore lint/suspicious/noExplicitAny: any manager, whatever its attribute type
  readonly #m: SessionManager<any>;
  /** The checked options with their defaults. */
  readonly #o: Readonly<ResolvedSyncOptions>;
  // The functions among them are called through fields of the client's own (`this` in them is the client).
  readonly #fetch: typeof fetch;
  readonly #onApply: SyncClientOptions['onApply'];
  readonly #onError: SyncClientOptions['onError'];
  #lastTouchPush = Number.NEGATIVE_INFINITY;
  #touchTimer: ReturnType<typeof setInterval> | undefined;
  #cursor: string | null = null;
  #lastPoll = Number.NEGATIVE_INFINITY;
  #polling: Promise<void> | undefined;
  #lastDirectTouchFlush = Number.NEGATIVE_INFINITY;
  #stream: AbortController | undefined;
  /** Stream mode: an event arrived on the current connection (beforeRead then leaves freshness to it). */
  #streamLive = false;
  #stopped = false;

  // biome-ignore lint/suspicious/noExplicitAny: any manager, whatever its attribute type
  constructor(manager: SessionManager<any>, options: SyncClientOptions) {
    // Every option is checked before anything changes: a bad one throws and leaves the manager as it was.
    const o = resolveSyncOptions(options);
    this.#m = manager;
    this.#o = o;
    this.#fetch = o.fetch;
    this.#onApply = o.onApply;
    this.#onError = o.onError;
    // The manager's touches go to the sync host from now on (pushTouches), not to the manager's own flush.
    manager._touchesTakenBySync();
  }

  get cursor(): string | null {
    return this.#cursor;
  }

  #now(): number {
    return this.#m.config.clock();
  }

  /**
   * Call before reading sessions (the middleware does). Returns a promise to await when the cache is
   * not fresh enough to serve (an inline poll), and otherwise a background poll to hand to `waitUntil`
   * (or undefined when none is due).
   */
  beforeRead(): { mustAwait: boolean; promise: Promise<void> | undefined } {
    // A live stream keeps the cache fresh; while it is down (connecting, refused, reconnecting), poll.
    if (this.#o.mode === 'stream' && this.#streamLive) return { mustAwait: false, promise: undefined };
    const now = this.#now();
    const stale = this.#m.cache.freshAsOf < now - this.#m.config.maxStaleness;
    if (stale) return { mustAwait: true, promise: this.sync() };
    if (now - this.#lastPoll >= this.#o.syncInterval) return { mustAwait: false, promise: this.sync() };
    return { mustAwait: false, promise: undefined };
  }

  /** One poll of the feed (shared by concurrent callers); falls back to the database when the worker fails. */
  sync(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  async #poll(): Promise<void> {
    const startedAt = this.#now();
    this.#lastPoll = startedAt;
    try {
      const q = this.#cursor === null ? '' : `?after=${encodeURIComponent(this.#cursor)}`;
      const res = await this.#request(`${PATHS.changes}${q}`, { method: 'GET' });
      if (!res.ok) throw new Error(`sync worker answered ${res.status}`);
      const r = (await res.json()) as FeedResponse;
      // On our clock: never later than when we asked, minus how old the worker says its answer is.
      this.#apply({ ...r, freshAsOf: startedAt - answerAge(r) }, 'worker');
    } catch (e) {
      this.#onError?.(e);
      if (!this.#o.directFallback) return;
      // Read the record ourselves: one statement through the manager's database.
      try {
        const page: ChangePage = await readChanges(this.#m.store.db, this.#m.names, this.#cursor);
        this.#apply({ ...page, freshAsOf: startedAt }, 'database');
      } catch (e2) {
        this.#onError?.(e2);
      }
    }
  }

  #apply(r: FeedResponse, source: 'worker' | 'stream' | 'database'): void {
    if (!Number.isFinite(r.freshAsOf)) throw new Error('sync worker sent a feed answer without a valid freshAsOf');
    if (r.reset) this.#m.cache.clear();
    // An entry already at the version a change left its session at stays (its own write, say); an answer
    // without versions (an earlier worker) invalidates every id.
    else if (r.ids.length > 0) this.#m.cache.invalidate(r.ids, feedVersions(r));
    this.#cursor = r.cursor;
    this.#m.cache.markFresh(r.freshAsOf);
    this.#onApply?.({ ids: r.ids, reset: r.reset, freshAsOf: r.freshAsOf, source });
  }

  async #request(path: string, init: RequestInit): Promise<Response> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error('sync worker request timed out')), this.#o.requestTimeout);
    try {
      return await this.#fetch(`${this.#o.url}${path}`, {
        ...init,
        headers: { ...this.#o.headers, ...(init.headers as Record<string, string>) },
        signal: ac.signal,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The touch push to hand to `waitUntil` when one is due (poll mode), else undefined. */
  pushTouchesIfDue(): Promise<void> | undefined {
    if (this.#o.mode === 'stream' || this.#m.pendingTouchCount === 0) return undefined;
    if (this.#now() - this.#lastTouchPush < this.#o.touchInterval) return undefined;
    return this.pushTouches();
  }

  /**
   * Sends this manager's pending touches to the worker. If the worker can't take them, writes them
   * directly (at most once per touchFallbackInterval; otherwise they are kept for the next call).
   */
  async pushTouches(): Promise<void> {
    this.#lastTouchPush = this.#now();
    const pairs = this.#m.takePendingTouches();
    if (pairs.length === 0) return;
    let sent = 0;
    try {
      for (const { body, count } of touchBodies(pairs)) {
        const res = await this.#request(PATHS.touches, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        if (!res.ok) throw new Error(`sync worker refused touches: ${res.status}`);
        sent += count;
      }
    } catch (e) {
      this.#onError?.(e);
      this.#m.restoreTouches(pairs.slice(sent));
      const now = this.#now();
      if (now - this.#lastDirectTouchFlush >= this.#o.touchFallbackInterval) {
        this.#lastDirectTouchFlush = now;
        await this.#m.flushTouches().catch((e2) => this.#onError?.(e2));
      }
    }
  }

  /**
   * Stream mode: connects the push stream and keeps it connected, and sends touches every
   * touchInterval, until `stop()`. (Poll mode needs no start: the middleware drives it.)
   */
  start(): void {
    if (this.#o.mode !== 'stream' || this.#stream) return;
    this.#stopped = false;
    void this.#runStream();
    this.#touchTimer = setInterval(() => void this.pushTouches().catch(() => {}), this.#o.touchInterval);
    (this.#touchTimer as { unref?: () => void }).unref?.();
  }

  /** Stops the stream and the touch timer, and sends the touches still pending. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stream?.abort();
    this.#stream = undefined;
    clearInterval(this.#touchTimer);
    this.#touchTimer = undefined;
    await this.pushTouches().catch(() => {});
  }

  async #runStream(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      const abort = new AbortController();
      this.#stream = abort;
      /** How long the worker asked us to wait (Retry-After of a 503, or the stream's `retry:` field). */
      let asked = 0;
      try {
        const q = this.#cursor === null ? '' : `?after=${encodeURIComponent(this.#cursor)}`;
        await readStream({
          fetch: this.#fetch,
          url: `${this.#o.url}${PATHS.stream}${q}`,
          headers: this.#o.headers,
          abort,
          idleTimeout: this.#o.streamIdleTimeout,
          now: () => this.#now(),
          cursor: () => this.#cursor,
          retry: (ms) => {
            asked = ms;
          },
          event: (ev, freshAsOf) => {
            attempt = 0;
            this.#apply({ ...ev, freshAsOf }, 'stream');
            this.#streamLive = true;
          },
          closed: () => {
            this.#streamLive = false;
          },
        });
      } catch (e) {
        if (this.#stopped) return;
        this.#onError?.(e);
        if (this.#o.directFallback) await this.sync().catch(() => {});
      }
      if (this.#stopped) return;
      // Until the stream is back, beforeRead() polls (see #streamLive).
      const delay = Math.max(asked, backoffDelay(attempt++, { max: 5000 }));
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * `TouchBatch` bodies of at most MAX_TOUCH_BODY_BYTES (UTF-8) and MAX_TOUCHES_PER_BATCH touches each, in
 * order: what the worker accepts (it answers 413 to a larger body).
 */
export function* touchBodies(touches: readonly TouchEntry[]): Generator<{ body: string; count: number }> {
  const head = '{"touches":[';
  const tail = ']}';
  const enc = new TextEncoder();
  let parts: string[] = [];
  let bytes = head.length + tail.length;
  for (const t of touches) {
    const s = JSON.stringify(t);
    // Ids are UUIDs and times numbers (ASCII); measure exactly anyway if anything else got in.
    const n = /^[\x20-\x7e]*$/.test(s) ? s.length : enc.encode(s).length;
    const sep = parts.length > 0 ? 1 : 0;
    if (parts.length > 0 && (bytes + sep + n > MAX_TOUCH_BODY_BYTES || parts.length >= MAX_TOUCHES_PER_BATCH)) {
      yield { body: `${head}${parts.join(',')}${tail}`, count: parts.length };
      parts = [];
      bytes = head.length + tail.length;
    }
    bytes += (parts.length > 0 ? 1 : 0) + n;
    parts.push(s);
  }
  if (parts.length > 0) yield { body: `${head}${parts.join(',')}${tail}`, count: parts.length };
}

/**
 * How old a feed answer's knowledge is by the worker's own clock (`now - freshAsOf`), never negative: a
 * worker whose clock runs ahead (or that lies) cannot make a client trust its cache longer. 0 when the
 * worker does not say (the answer then counts as fresh as of the request's send time).
 */
function answerAge(r: FeedResponse): number {
  if (typeof r.now !== 'number' || !Number.isFinite(r.now) || !Number.isFinite(r.freshAsOf)) return 0;
  return Math.max(0, r.now - r.freshAsOf);
}
