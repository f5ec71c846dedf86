/**
 * Hono on Cloudflare Workers (or Vercel Edge, Deno Deploy) with Neon: the session manager, the sync client
 * and the database connection wired for a runtime where a connection cannot outlive a request.
 *
 * ```ts
 * import { Hono } from 'hono';
 * import type { SessionEnv } from 'pg-edge-session/hono';
 * import { neonSessionMiddleware } from 'pg-edge-session/neon';
 *
 * type Bindings = { DATABASE_URL: string; SYNC_WORKER_URL: string; SYNC_SECRET: string };
 * const app = new Hono<{ Bindings: Bindings } & SessionEnv<{ theme: string }>>();
 * app.use(neonSessionMiddleware((env: Bindings) => ({
 *   databaseUrl: env.DATABASE_URL, // Neon's pooled endpoint
 *   sync: { workerUrl: env.SYNC_WORKER_URL, secret: env.SYNC_SECRET },
 * })));
 * app.get('/', async (c) => c.json(await c.var.session.get()));
 * export default app;
 * ```
 *
 * The connection: Workers forbid using an I/O object (Neon's WebSocket) from a request other than the one
 * that opened it, so the isolate's manager cannot hold a pool. Each statement the manager runs gets its
 * own Neon `Client`, opened in the request (or `waitUntil` work) that runs the statement: nothing leaks
 * into another request and no AsyncLocalStorage (no `nodejs_compat` flag) is needed. The statement settles
 * when its rows arrive; the connection's close (a round trip of its own) goes on after it, and the
 * middleware hands the closes to `waitUntil` once the response is ready, so no close is on a request's
 * path (`neonSessions` users: `ctx.waitUntil(db.closed())` after the response). A read served by the cache
 * opens no connection; a miss or a write opens one. The price: a request that runs two statements (sign-in
 * over an old cookie, a miss followed by a save) opens two connections.
 *
 * Needs `@neondatabase/serverless` (an optional peer dependency). Edge-safe: Web APIs only.
 */
import type { MiddlewareHandler } from 'hono';
import type { SessionConfig } from './core/config.ts';
import { ConfigError } from './core/errors.ts';
import { SessionManager } from './core/manager.ts';
import type { Attributes } from './core/session.ts';
import { closingSessionMiddleware } from './drivers/closing.ts';
import { type NeonConnectionSettings, type NeonExecutor, neonExecutor } from './drivers/neon/index.ts';
import { type SessionEnv, type SessionMiddlewareOptions, sessionMiddleware } from './hono.ts';
import { SyncClient, type SyncClientOptions } from './sync/client.ts';

export { type NeonConnectionSettings, type NeonExecutor, neonExecutor };

/** Options of `neonSessions()`. */
export interface NeonSessionsOptions {
  /**
   * PostgreSQL connection string. On Neon, the POOLED endpoint (host with `-pooler`): every statement opens
   * a connection, which the pooler makes cheap. (The sync worker needs the direct endpoint.) Required.
   */
  databaseUrl: string;
  /** The `SessionManager`'s options (`schemaName`, `tablePrefix`, `maxStaleness`, ...). Default `{}`. */
  config?: SessionConfig | undefined;
  /**
   * The sync worker: `{ workerUrl, secret }` and any other `SyncClientOptions` (`mode` defaults to
   * `'poll'`, the mode for runtimes without background work). Omit it to run without a worker (cached
   * sessions are then trusted for `maxStaleness` after they were read).
   */
  sync?: SyncClientOptions | undefined;
  /** `application_name` of the connections (find them in `pg_stat_activity`). Default `'pg-edge-session'`. */
  applicationName?: string | undefined;
  /**
   * Local development only: `host:port/path` of a WebSocket-to-TCP proxy in front of a plain PostgreSQL
   * (e.g. `'127.0.0.1:5433/v2'`, what `npx pg-edge-session ws-proxy` prints). Connections then use plain `ws://`, no TLS inside, no pipelined startup.
   * Never in production. Default unset (Neon's own WebSocket endpoint).
   */
  wsProxy?: string | undefined;
  /**
   * Any other per-connection setting of Neon's driver, applied after `wsProxy`'s (e.g.
   * `webSocketConstructor` on a runtime without a global `WebSocket`, such as Node 20).
   */
  neonConfig?: NeonConnectionSettings | undefined;
}

/** What `neonSessions()` returns: keep it for the isolate's life (module scope or a lazy singleton). */
export interface NeonSessions<A extends Attributes = Attributes> {
  manager: SessionManager<A>;
  /** The sync client, when `sync` was given. Pass it to `sessionMiddleware({ manager, sync })`. */
  sync: SyncClient | undefined;
  /**
   * The executor the manager runs on: one Neon connection per statement, closed after the statement
   * settles. Hand `db.closed()` to `waitUntil` after each response (`neonSessionMiddleware` does).
   */
  db: NeonExecutor;
}

/**
 * The manager, the sync client and the executor for one isolate. Call it once per isolate (on Workers
 * the environment arrives with the first request: build it lazily, as `neonSessionMiddleware` does).
 * Throws a `ConfigError` naming the option when one is invalid.
 */
export function neonSessions<A extends Attributes = Attributes>(options: NeonSessionsOptions): NeonSessions<A> {
  if (options === null || typeof options !== 'object') throw new ConfigError('options', 'expected an object');
  const db = neonExecutor(options);
  const manager = new SessionManager<A>(db, options.config ?? {});
  const sync = options.sync === undefined ? undefined : new SyncClient(manager, { mode: 'poll', ...options.sync });
  return { manager, sync, db };
}

/** What `neonSessionMiddleware`'s function returns: `neonSessions` options plus the middleware's own. */
export interface NeonSessionMiddlewareOptions<A extends Attributes = Attributes>
  extends NeonSessionsOptions,
    Omit<SessionMiddlewareOptions<A>, 'manager' | 'sync'> {}

/**
 * `sessionMiddleware` on Neon in one call. `init` receives the runtime's bindings (`c.env`) on the first
 * request and returns the options; the manager, sync client and middleware it makes are kept for the
 * isolate's life (later requests do not call `init` again). An invalid option throws a `ConfigError` from
 * that first request (Hono's `onError` sees it).
 */
// biome-ignore lint/suspicious/noExplicitAny: the bindings type is the app's
export function neonSessionMiddleware<A extends Attributes = Attributes, B extends object = any>(
  init: (env: B) => NeonSessionMiddlewareOptions<A>,
): MiddlewareHandler<SessionEnv<A> & { Bindings: B }> {
  if (typeof init !== 'function') throw new ConfigError('init', 'expected a function (env) => options');
  return closingSessionMiddleware<A, B>((env) => {
    const { databaseUrl, config, sync, applicationName, wsProxy, neonConfig, ...rest } = init(env);
    return {
      sessions: neonSessions<A>({ databaseUrl, config, sync, applicationName, wsProxy, neonConfig } as NeonSessionsOptions),
      middleware: (s) => sessionMiddleware<A>({ ...rest, manager: s.manager, ...(s.sync ? { sync: s.sync } : {}) }),
    };
  });
}
