/**
 * The sync client's options: their types, and their checking, once, at construction (src/sync/client.ts):
 * every bad value is a ConfigError naming the option (src/internal/validate.ts), thrown before the client
 * changes anything.
 */
import { ConfigError } from '../core/errors.ts';
import { isLoopbackHost } from '../internal/hosts.ts';
import { choice, duration, flag, fn, MAX_TIMER_MS, options, string } from '../internal/validate.ts';

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

/** Every option, for the unknown-key check (a typo is refused, not ignored). */
const KNOWN: Record<keyof SyncClientOptions, true> = {
  workerUrl: true,
  durableObject: true,
  objectName: true,
  fetcher: true,
  insecureHttp: true,
  secret: true,
  mode: true,
  syncInterval: true,
  requestTimeout: true,
  directFallback: true,
  touchFallbackInterval: true,
  touchInterval: true,
  streamIdleTimeout: true,
  fetch: true,
  onApply: true,
  onError: true,
};
const KNOWN_KEYS = new Set(Object.keys(KNOWN));

/** The options as the client runs with them: checked, defaults applied. */
export interface ResolvedSyncOptions {
  /** The worker's base URL, or BINDING_BASE_URL through a binding. */
  url: string;
  headers: Record<string, string>;
  mode: 'poll' | 'stream';
  syncInterval: number;
  requestTimeout: number;
  directFallback: boolean;
  touchFallbackInterval: number;
  touchInterval: number;
  streamIdleTimeout: number;
  fetch: typeof fetch;
  onApply: SyncClientOptions['onApply'];
  onError: SyncClientOptions['onError'];
}

/** Checks every option (a ConfigError naming the first bad one) and applies the defaults. */
export function resolveSyncOptions(input: SyncClientOptions | undefined): ResolvedSyncOptions {
  const o = options('options', input, KNOWN_KEYS) as SyncClientOptions;
  const targets = [o.workerUrl, o.durableObject, o.fetcher].filter((t) => t !== undefined).length;
  if (targets !== 1) {
    throw new ConfigError(
      targets === 0 ? 'workerUrl' : 'durableObject',
      'give exactly one of workerUrl (a sync worker over the network), durableObject (a SessionSyncObject binding) and fetcher',
    );
  }
  if (o.insecureHttp !== undefined) flag('insecureHttp', o.insecureHttp);
  const binding = bindingFetch(o.durableObject, o.objectName, o.fetcher);
  const url = binding === undefined ? checkWorkerUrl(o.workerUrl, o.insecureHttp) : BINDING_BASE_URL;
  // An empty secret sends no authorization header, as an absent one.
  const secret = o.secret === undefined ? '' : string('secret', o.secret, true);
  const custom = o.fetch === undefined ? undefined : fn<typeof fetch>('fetch', o.fetch, 'a fetch function');
  return {
    url,
    headers: secret ? { authorization: `Bearer ${secret}` } : {},
    mode: choice('mode', o.mode ?? 'poll', ['poll', 'stream']),
    syncInterval: duration('syncInterval', o.syncInterval ?? 250, 0),
    requestTimeout: duration('requestTimeout', o.requestTimeout ?? 2000, 1, MAX_TIMER_MS),
    directFallback: flag('directFallback', o.directFallback ?? true),
    touchFallbackInterval: duration('touchFallbackInterval', o.touchFallbackInterval ?? 60_000, 0),
    touchInterval: duration('touchInterval', o.touchInterval ?? 2000, 0, MAX_TIMER_MS),
    streamIdleTimeout: duration('streamIdleTimeout', o.streamIdleTimeout ?? 5000, 1, MAX_TIMER_MS),
    fetch: binding ?? custom ?? ((...a) => globalThis.fetch(...a)),
    onApply: o.onApply === undefined ? undefined : fn('onApply', o.onApply, 'a function (change) => void'),
    onError: o.onError === undefined ? undefined : fn('onError', o.onError, 'a function (error) => void'),
  };
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
    const objectName = name === undefined ? 'pg-edge-session' : string('objectName', name);
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
