import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { choice, duration, flag, MAX_TIMER_MS } from '../core/config.ts';
import { ConfigError } from '../core/errors.ts';
import type { SessionManager } from '../core/manager.ts';
import type { TouchEntry } from '../db/store.ts';
import { type ChangePage, readChanges } from '../feed.ts';
import { isLoopbackHost } from '../internal/hosts.ts';
import { type FeedEvent, type FeedResponse, MAX_TOUCH_BODY_BYTES, MAX_TOUCHES_PER_BATCH, PATHS } from '../protocol.ts';
import { backoffDelay } from './backoff.ts';

/** What the client calls `fetch` on: a Durable Object stub, a service binding, anything with `fetch`. */
export interface FetcherLike {
  fetch(request: Request): Promise<Response>;
}

/**
 * A Durable Object namespace binding (`[[durable_objects.bindings]]` in wrangler.toml) whose class is
 * `SessionSyncObject` from `pg-edge-session/durable-object`. Cloudflare's `DurableObjectNamespace` fits.
 */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: unknown): FetcherLike;
}

/** Base URL of requests sent through a binding: never resolved (the binding routes them), only parsed. */
export const BINDING_BASE_URL = 'https://pg-edge-session.sync';

export interface SyncClientOptions {
  /**
   * Base URL of a sync worker reached over the network (the Node worker), e.g.
   * https://sessions-worker.example.com. Must be https (the secret and the feed cross the network), except on
   * loopback (http://127.0.0.1, http://localhost, http://[::1]) or with `insecureHttp: true`. Exactly one of
   * `workerUrl`, `durableObject` and `fetcher` is required.
   */
  workerUrl?: string | undefined;
  /**
   * The sync host as a Durable Object (Cloudflare Workers): the namespace binding of `SessionSyncObject`.
   * Requests go through the binding to the one object named `objectName` (no URL, no secret, no TLS: the
   * binding is only reachable by your own Workers). Same protocol as `workerUrl`.
   */
  durableObject?: DurableObjectNamespaceLike | undefined;
  /** Name of the object `durableObject` addresses (`idFromName`). Default 'pg-edge-session'. */
  objectName?: string | undefined;
  /** Any fetcher that answers the sync protocol (a Durable Object stub, a service binding). */
  fetcher?: FetcherLike | undefined;
  /**
   * Allow a plain-http `workerUrl` that is not loopback (a private network you trust, e.g. a sidecar or a
   * service mesh that encrypts for you). Default false.
   */
  insecureHttp?: boolean;
  /** The worker's shared secret (sent as a bearer token). Omit only against an --insecure-dev worker. */
  secret?: string | undefined;
  /**
   * 'poll' (Workers, Vercel Edge: no background work between requests): `beforeRead()` polls the feed at
   * most every syncInterval, in the background while the cache is fresh and inline when it is not.
   * 'stream' (Node, Bun, Deno): holds the worker's push stream and reconnects on its own (capped,
   * jittered backoff, never sooner than the worker's Retry-After); while the stream is down, `beforeRead()`
   * polls as in 'poll' mode.
   * Default 'poll'.
   */
  mode?: 'poll' | 'stream';
  /** Shortest time between polls, in ms. Default 250. Keep it below the manager's maxStaleness. */
  syncInterval?: number;
  /** How long one request to the worker may take before it counts as failed, in ms. Default 2000. */
  requestTimeout?: number;
  /**
   * When the worker cannot be reached: read the change record directly from the database (one
   * statement through the manager's own database), so the cache stays usable. Default true. When false,
   * entries simply age out after maxStaleness and reads go to the database.
   */
  directFallback?: boolean;
  /**
   * When the worker cannot take touches: write them directly (batched, with GREATEST), at most once per
   * this interval, in ms. Default 60000.
   */
  touchFallbackInterval?: number;
  /**
   * How often this isolate sends its touches to the worker, in ms. Default 2000. In 'poll' mode the
   * middleware sends them after a response (waitUntil) once this much time has passed; in 'stream'
   * mode a timer does.
   */
  touchInterval?: number;
  /** Stream mode: reconnect when no event arrived for this long, in ms. Default 5000. */
  streamIdleTimeout?: number;
  /** `fetch` to use with `workerUrl` (tests, custom agents). Default globalThis.fetch. */
  fetch?: typeof fetch | undefined;
  /** Called after invalidations are applied (metrics, tests). */
  onApply?: (change: { ids: string[]; reset: boolean; freshAsOf: number; source: 'worker' | 'stream' | 'database' }) => void;
  /** Called when talking to the worker fails (it is retried; nothing is lost). */
  onError?: (error: unknown) => void;
}

/**
 * The isolate's client of the sync worker: keeps a SessionManager's cache fresh from the change feed and
 * sends its touches to the worker. Freshness: after applying a feed answer the cache is marked fresh as
 * of the answer's `freshAsOf`; when no answer arrives the marks stop advancing and entries age out
 * after maxStaleness, so a stale session is never served, worker or no worker.
 */
export class SyncClient {
  // biome-ignore lint/suspicious/noExplicitAny: any manager, whatever its attribute type
  readonly #m: SessionManager<any>;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #mode: 'poll' | 'stream';
  readonly #interval: number;
  readonly #timeout: number;
  readonly #direct: boolean;
  readonly #touchFallbackInterval: number;
  readonly #touchInterval: number;
  readonly #streamIdleTimeout: number;
  #lastTouchPush = Number.NEGATIVE_INFINITY;
  #touchTimer: ReturnType<typeof setInterval> | undefined;
  readonly #fetch: typeof fetch;
  readonly #onApply: SyncClientOptions['onApply'];
  readonly #onError: SyncClientOptions['onError'];
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
    this.#m = manager;
    const targets = [options?.workerUrl, options?.durableObject, options?.fetcher].filter((t) => t !== undefined).length;
    if (targets !== 1) {
      throw new ConfigError(
        targets === 0 ? 'workerUrl' : 'durableObject',
        'give exactly one of workerUrl (a sync worker over the network), durableObject (a SessionSyncObject binding) and fetcher',
      );
    }
    const binding = bindingFetch(options.durableObject, options.objectName, options.fetcher);
    this.#url = binding === undefined ? checkWorkerUrl(options.workerUrl, options.insecureHttp) : BINDING_BASE_URL;
    this.#headers = options.secret ? { authorization: `Bearer ${options.secret}` } : {};
    this.#mode = choice('mode', options.mode ?? 'poll', ['poll', 'stream']);
    this.#interval = duration('syncInterval', options.syncInterval ?? 250, 0);
    this.#timeout = duration('requestTimeout', options.requestTimeout ?? 2000, 1, MAX_TIMER_MS);
    this.#direct = flag('directFallback', options.directFallback ?? true);
    this.#touchFallbackInterval = duration('touchFallbackInterval', options.touchFallbackInterval ?? 60_000, 0);
    this.#touchInterval = duration('touchInterval', options.touchInterval ?? 2000, 0, MAX_TIMER_MS);
    this.#streamIdleTimeout = duration('streamIdleTimeout', options.streamIdleTimeout ?? 5000, 1, MAX_TIMER_MS);
    this.#fetch = binding ?? options.fetch ?? ((...a) => globalThis.fetch(...a));
    this.#onApply = options.onApply;
    this.#onError = options.onError;
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
    if (this.#mode === 'stream' && this.#streamLive) return { mustAwait: false, promise: undefined };
    const now = this.#now();
    const stale = this.#m.cache.freshAsOf < now - this.#m.config.maxStaleness;
    if (stale) return { mustAwait: true, promise: this.sync() };
    if (now - this.#lastPoll >= this.#interval) return { mustAwait: false, promise: this.sync() };
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
      if (!this.#direct) return;
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
    else if (r.ids.length > 0) this.#m.cache.invalidate(r.ids);
    this.#cursor = r.cursor;
    this.#m.cache.markFresh(r.freshAsOf);
    this.#onApply?.({ ids: r.ids, reset: r.reset, freshAsOf: r.freshAsOf, source });
  }

  async #request(path: string, init: RequestInit): Promise<Response> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error('sync worker request timed out')), this.#timeout);
    try {
      return await this.#fetch(`${this.#url}${path}`, {
        ...init,
        headers: { ...this.#headers, ...(init.headers as Record<string, string>) },
        signal: ac.signal,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The touch push to hand to `waitUntil` when one is due (poll mode), else undefined. */
  pushTouchesIfDue(): Promise<void> | undefined {
    if (this.#mode === 'stream' || this.#m.pendingTouchCount === 0) return undefined;
    if (this.#now() - this.#lastTouchPush < this.#touchInterval) return undefined;
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
      if (now - this.#lastDirectTouchFlush >= this.#touchFallbackInterval) {
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
    if (this.#mode !== 'stream' || this.#stream) return;
    this.#stopped = false;
    void this.#runStream();
    this.#touchTimer = setInterval(() => void this.pushTouches().catch(() => {}), this.#touchInterval);
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
      const ac = new AbortController();
      this.#stream = ac;
      /** How long the worker asked us to wait (Retry-After of a 503, or the stream's `retry:` field). */
      let asked = 0;
      try {
        const q = this.#cursor === null ? '' : `?after=${encodeURIComponent(this.#cursor)}`;
        const sentAt = this.#now();
        const res = await this.#fetch(`${this.#url}${PATHS.stream}${q}`, {
          headers: { ...this.#headers, accept: 'text/event-stream' },
          signal: ac.signal,
        });
        if (!res.ok || res.body === null) {
          asked = retryAfterMs(res.headers.get('retry-after'));
          await res.body?.cancel().catch(() => {});
          throw new Error(`sync worker stream answered ${res.status}`);
        }
        let first = true;
        // The worker's clock minus ours is at most this (set by the first event: it was answered after
        // `sentAt`). Each event's freshAsOf is placed on our clock with it, never later than its arrival.
        let offsetBound = Number.POSITIVE_INFINITY;
        // The worker sends an event on every read of the record (4 a second by default): a stream that
        // stays silent longer than streamIdleTimeout is dead (a half-open connection), so reconnect.
        let idle: ReturnType<typeof setTimeout> | undefined;
        const armIdle = () => {
          clearTimeout(idle);
          idle = setTimeout(() => ac.abort(new Error('sync worker stream went silent')), this.#streamIdleTimeout);
        };
        armIdle();
        // A spec-complete parser (CRLF and CR line ends, comments, id:, retry:, multi-line data), bounded so
        // a worker that never ends a line cannot make us buffer without limit.
        const events: EventSourceMessage[] = [];
        let broken: Error | undefined;
        const parser = createParser({
          maxBufferSize: MAX_EVENT_CHARS,
          onEvent: (m) => events.push(m),
          onRetry: (ms) => (asked = Math.min(ms, MAX_RETRY_WAIT)),
          onError: (e) => {
            if (e.type === 'max-buffer-size-exceeded') broken = e;
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>).getReader();
        try {
          read: for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            armIdle(); // any bytes, comments included, show the connection is alive
            parser.feed(value);
            if (broken) throw broken;
            for (const m of events.splice(0)) {
              if (m.event !== undefined && m.event !== 'changes') continue;
              const ev = JSON.parse(m.data) as FeedEvent;
              if (!first && ev.from !== this.#cursor) break read; // a gap: reconnect with our cursor
              const arrived = this.#now();
              if (first) offsetBound = typeof ev.now === 'number' && Number.isFinite(ev.now) ? ev.now - sentAt : Number.POSITIVE_INFINITY;
              first = false;
              attempt = 0;
              const local = Number.isFinite(offsetBound) ? ev.freshAsOf - offsetBound : ev.freshAsOf;
              this.#apply({ ...ev, freshAsOf: Math.min(local, arrived) }, 'stream');
              this.#streamLive = true;
            }
          }
        } finally {
          clearTimeout(idle);
          this.#streamLive = false;
          await reader.cancel().catch(() => {});
        }
      } catch (e) {
        if (this.#stopped) return;
        this.#onError?.(e);
        if (this.#direct) await this.sync().catch(() => {});
      }
      if (this.#stopped) return;
      // Until the stream is back, beforeRead() polls (see #streamLive).
      const delay = Math.max(asked, backoffDelay(attempt++, { max: 5000 }));
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Longest wait a worker can ask for (Retry-After, `retry:`): it cannot park a client for longer. */
const MAX_RETRY_WAIT = 60_000;
/** Longest event (and line) the stream parser buffers, in characters: a 10,000-id event is ~400,000. */
const MAX_EVENT_CHARS = 8 * 1024 * 1024;

/** A Retry-After header (seconds, or an HTTP date) in ms, at most MAX_RETRY_WAIT; 0 when absent or unreadable. */
function retryAfterMs(h: string | null): number {
  if (h === null || h.trim() === '') return 0;
  const secs = Number(h);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(h) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_WAIT) : 0;
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

/**
 * `fetch` through a binding: a Durable Object namespace (a stub per request, to the object named `name`:
 * stubs are cheap, and none outlives the request that made it) or a fetcher. Undefined without either.
 */
function bindingFetch(
  ns: DurableObjectNamespaceLike | undefined,
  name: string | undefined,
  fetcher: FetcherLike | undefined,
): typeof fetch | undefined {
  if (ns !== undefined) {
    if (ns === null || typeof ns.idFromName !== 'function' || typeof ns.get !== 'function') {
      throw new ConfigError('durableObject', 'expected a Durable Object namespace binding (idFromName, get)');
    }
    const objectName = name ?? 'pg-edge-session';
    if (typeof objectName !== 'string' || objectName === '') throw new ConfigError('objectName', 'expected a non-empty string');
    return (input, init) => ns.get(ns.idFromName(objectName)).fetch(new Request(input, init));
  }
  if (fetcher !== undefined) {
    if (fetcher === null || typeof fetcher.fetch !== 'function') throw new ConfigError('fetcher', 'expected an object with fetch(request)');
    return (input, init) => fetcher.fetch(new Request(input, init));
  }
  return undefined;
}

/** The worker's base URL without trailing slashes; https, or http on loopback or when allowed. */
function checkWorkerUrl(input: unknown, insecureHttp: unknown): string {
  if (insecureHttp !== undefined) flag('insecureHttp', insecureHttp);
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw new ConfigError('workerUrl', 'expected an absolute http(s) URL of the sync worker');
  }
  if (typeof input !== 'string' || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new ConfigError('workerUrl', 'expected an absolute http(s) URL of the sync worker');
  }
  if (url.username !== '' || url.password !== '') throw new ConfigError('workerUrl', 'must not carry credentials (use `secret`)');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && insecureHttp !== true) {
    throw new ConfigError(
      'workerUrl',
      `plain http to ${url.host} would send the secret and the feed unencrypted: use https, or set insecureHttp: true on a network you trust`,
    );
  }
  return input.replace(/\/+$/, '');
}
