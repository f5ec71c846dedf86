/**
 * Neon's serverless driver for the library: per-connection settings (a local WebSocket proxy), the executor
 * that opens one connection per statement, and the sync host's connections. Only code that needs Neon
 * imports this module (`pg-edge-session/neon`, `pg-edge-session/durable-object`, and `neonHostDb` of
 * `pg-edge-session/host` when it first connects), so `@neondatabase/serverless` stays an optional peer.
 * Edge-safe: Web APIs only.
 */
import { Client, type NeonConfig } from '@neondatabase/serverless';
import type { SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/neon-serverless';
import { ConfigError, describeError, findErrorCode } from '../core/errors.ts';
import type { SqlExecutor } from '../db/executor.ts';
import { type HostDb, LISTENER_APPLICATION_NAME, type ListenClient, type NeonHostDbOptions } from '../host/db.ts';
import { pendingWork } from './closing.ts';

/** Settings of Neon's driver that apply per connection (`Client.neonConfig`). */
export type NeonConnectionSettings = Partial<
  Pick<
    NeonConfig,
    'wsProxy' | 'useSecureWebSocket' | 'pipelineConnect' | 'pipelineTLS' | 'coalesceWrites' | 'forceDisablePgSSL' | 'webSocketConstructor'
  >
>;

/** Options of `neonExecutor` (documented on `NeonSessionsOptions` in `src/neon.ts`). */
export interface NeonExecutorOptions {
  databaseUrl: string;
  applicationName?: string | undefined;
  wsProxy?: string | undefined;
  neonConfig?: NeonConnectionSettings | undefined;
  /**
   * `'after'` (default): a statement settles when its rows arrive and its connection closes after it (await
   * `closed()`, in `waitUntil` on Workers). `'before'`: the statement settles only once its connection is
   * closed (the sync host's statements, where no request waits).
   */
  close?: 'after' | 'before' | undefined;
}

/** The executor `neonExecutor()` builds: a Neon connection per statement. */
export interface NeonExecutor extends SqlExecutor {
  /**
   * Settles when the connections of the statements under way now are closed (and those their completion
   * starts). `neonSessionMiddleware` hands it to `waitUntil` after each response.
   */
  closed(): Promise<void>;
}

/**
 * The settings for `wsProxy` (`host:port/path` of a local WebSocket-to-TCP proxy, or unset), then
 * `neonConfig` over them.
 */
export function neonSettings(wsProxy: string | undefined, neonConfig?: NeonConnectionSettings): NeonConnectionSettings {
  const settings: NeonConnectionSettings = {};
  if (wsProxy !== undefined) {
    if (typeof wsProxy !== 'string' || wsProxy === '') {
      throw new ConfigError('wsProxy', 'expected "host:port/path" of a WebSocket proxy');
    }
    const proxy = wsProxy.replace(/^wss?:\/\//, '').replace(/\/+$/, '');
    settings.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
    // A local proxy speaks plain ws:// to a PostgreSQL without Neon's cleartext password flow; the
    // write-coalescing delay only adds latency on loopback.
    settings.useSecureWebSocket = false;
    settings.pipelineTLS = false;
    settings.pipelineConnect = false;
    settings.coalesceWrites = false;
  }
  return { ...settings, ...neonConfig };
}

function neonClient(connectionString: string, applicationName: string, settings: NeonConnectionSettings): Client {
  const client = new Client({ connectionString, application_name: applicationName } as never);
  Object.assign((client as unknown as { neonConfig: NeonConnectionSettings }).neonConfig, settings);
  return client;
}

/**
 * An executor that runs each statement on its own Neon connection, opened by the request that runs it;
 * the statement settles when its rows arrive and the connection's close goes on after it, off the
 * request's path (the module comment of `pg-edge-session/neon`, `src/neon.ts`, says why).
 */
export function neonExecutor(options: NeonExecutorOptions): NeonExecutor {
  if (typeof options?.databaseUrl !== 'string' || options.databaseUrl === '') {
    throw new ConfigError('databaseUrl', 'expected a PostgreSQL connection string (on Neon: the pooled endpoint)');
  }
  const settings = neonSettings(options.wsProxy, options.neonConfig);
  const connectionString = options.databaseUrl;
  const applicationName = options.applicationName ?? 'pg-edge-session';
  const closeBefore = options.close === 'before';
  if (options.close !== undefined && options.close !== 'after' && !closeBefore) {
    throw new ConfigError('close', "expected 'after' or 'before'");
  }
  /** Statements under way and connections still closing. */
  const work = pendingWork();
  async function run(query: SQL) {
    const client = neonClient(connectionString, applicationName, settings);
    // A dropped connection also emits 'error'; the statement's promise carries it to the caller.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (e) {
      throw connectFailure(e, connectionString, options.wsProxy);
    }
    let closing: Promise<unknown> | undefined;
    try {
      return await drizzle(client).execute(query);
    } finally {
      // Ending sends Terminate and waits for the socket's close: a round trip no caller needs to wait for.
      closing = work.track(client.end().catch(() => {}));
      if (closeBefore) await closing;
    }
  }
  return {
    execute: (query: SQL) => work.track(run(query)),
    closed: work.settled,
  };
}

/**
 * The sync host's connections on Neon's driver (`neonHostDb` of `src/host/db.ts` loads this lazily; the
 * Durable Object calls it directly): the LISTEN client stays open while the host is awake; every flush
 * statement and every feed read from the record opens its own connection and closes it before it settles
 * (no pool that keeps idle connections, so an idle host holds none); a cleanup run holds one for its
 * advisory lock.
 */
export function createNeonHostDb(options: NeonHostDbOptions): HostDb {
  const settings = options.settings ?? {};
  return {
    newListenClient: () => neonClient(options.databaseUrl, LISTENER_APPLICATION_NAME, settings) as unknown as ListenClient,
    overClient: (c) => drizzle(c as unknown as Client),
    pool: neonExecutor({
      databaseUrl: options.databaseUrl,
      applicationName: 'pg-edge-session-sync',
      neonConfig: settings,
      close: 'before',
    }),
    checkout: async () => {
      const c = neonClient(options.databaseUrl, 'pg-edge-session-cleanup', settings);
      c.on('error', () => {}); // a dropped connection also rejects the statement in flight
      await c.connect();
      return { db: drizzle(c), release: () => void c.end().catch(() => {}) };
    },
    end: async () => {},
  };
}

const LOCAL_HOST = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?|0\.0\.0\.0|host\.docker\.internal)$/i;

/**
 * A connection that could not be made, with what is likely wrong. In workerd, Neon's driver rejects with
 * the WebSocket's `ErrorEvent` ("Network connection lost.", no code): the message here says "connection
 * to HOST:PORT failed" (so the store classifies it DATABASE_UNAVAILABLE) and names the likely cause: a local
 * PostgreSQL without the WebSocket proxy, a proxy that is not running, or an endpoint that is wrong or
 * down. An error PostgreSQL itself answered (a SQLSTATE: wrong password, no such database) is kept as is.
 */
function connectFailure(e: unknown, connectionString: string, proxy: string | undefined): unknown {
  if (/^[0-9A-Z]{5}$/.test(findErrorCode(e) ?? '')) return e;
  let host = '';
  let port = '5432';
  try {
    const u = new URL(connectionString);
    host = u.hostname;
    port = u.port || port;
  } catch {
    // Neon's driver reported the URL; the hint then names no host.
  }
  const target = host === '' ? 'the database' : `${host}:${port}`;
  const hint =
    proxy !== undefined
      ? `is the WebSocket proxy at ${proxy} running (npx pg-edge-session ws-proxy) and PostgreSQL up at ${target}?`
      : LOCAL_HOST.test(host)
        ? "Neon's driver reaches a local PostgreSQL only through a WebSocket proxy: run npx pg-edge-session ws-proxy and set wsProxy (NEON_WS_PROXY in .dev.vars) to the address it prints"
        : `is ${host} a Neon endpoint (the pooled one), reachable from here?`;
  const cause = e instanceof Error || e === null || typeof e !== 'object' ? e : ((e as { error?: unknown }).error ?? e);
  const error = new Error(`connection to ${target} failed: ${describeError(cause)} (hint: ${hint})`, { cause });
  error.name = 'NeonConnectError';
  return error;
}
