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
 * that opened it, so the isolate's manager cannot hold a pool. `neonSessionMiddleware` gives each request a
 * connection of its own: the request's session runs on the isolate's manager bound to it
 * (`SessionManager._on`: same cache, touches and config), the connection opens at the request's first
 * statement (a read served by the cache opens none) and every statement of the request runs on it, one at
 * a time. Once the response is decided (also when the handler threw) it is released: it closes after its
 * last statement, in `waitUntil`, off the request's path. Work after the response (a touch flush) and a
 * statement after the release open a connection of their own, closed after it. Concurrent requests of one
 * isolate never share one. No AsyncLocalStorage (no `nodejs_compat` flag) is needed: the middleware hands
 * the bound manager to the request's session. `neonSessions()` alone (apps building their own middleware)
 * opens a connection per statement (`ctx.waitUntil(db.closed())` after the response).
 *
 * Needs `@neondatabase/serverless` (an optional peer dependency). Edge-safe: Web APIs only.
 */
import type { MiddlewareHandler } from 'hono';
import type { SessionConfig } from './core/config.ts';
import type { SessionManager } from './core/manager.ts';
import type { Attributes } from './core/session.ts';
import { type NeonConnectionSettings, type NeonExecutor, neonExecutor } from './drivers/neon/index.ts';
import { workersSessionMiddleware, workersSessions } from './drivers/workers-entry.ts';
import type { SessionEnv, SessionMiddlewareOptions } from './hono.ts';
import type { SyncClient, SyncClientOptions } from './sync/client.ts';

export { type NeonConnectionSettings, type NeonExecutor, neonExecutor };

/** Options of `neonSessions()`. */
export interface NeonSessionsOptions {
  /**
   * PostgreSQL connection string. On Neon, the POOLED endpoint (host with `-pooler`): every request that
   * needs the database opens a connection, which the pooler makes cheap. (The sync worker needs the direct endpoint.) Required.
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
   * settles (or one per request, `db.request()`, as `neonSessionMiddleware` uses it). Hand `db.closed()` to
   * `waitUntil` after each response (`neonSessionMiddleware` does).
   */
  db: NeonExecutor;
}

/**
 * The manager, the sync client and the executor for one isolate. Call it once per isolate (on Workers
 * the environment arrives with the first request: build it lazily, as `neonSessionMiddleware` does).
 * Throws a `ConfigError` naming the option when one is invalid.
 */
export function neonSessions<A extends Attributes = Attributes>(options: NeonSessionsOptions): NeonSessions<A> {
  return workersSessions<A, NeonSessionsOptions, NeonExecutor>(options, neonExecutor);
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
  const own = { databaseUrl: true, config: true, sync: true, applicationName: true, wsProxy: true, neonConfig: true } as const;
  return workersSessionMiddleware<A, NeonSessionsOptions, B>(init, own, neonSessions<A>);
}
