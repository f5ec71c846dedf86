/**
 * The example app as a Cloudflare Workers module worker (wrangler.toml: main = "example/worker.ts").
 *
 * What lives how long (pg-edge-session/neon does the wiring):
 * - per isolate: the SessionManager (its LRU cache is the point: a hit costs no I/O) and the SyncClient
 *   ('poll' mode: the middleware polls the feed and pushes touches in `waitUntil`), talking to the sync
 *   host: the Durable Object below (binding SESSION_SYNC, one `wrangler deploy`), or a Node sync worker
 *   when SYNC_WORKER_URL is set;
 * - per app: one SessionSyncObject (pg-edge-session/durable-object), exported from this module, which
 *   holds the LISTEN connection, flushes touches and runs cleanup on alarms, and idles with no traffic;
 * - per statement: the database connection. Workers cannot share a WebSocket (a Neon `Pool`) between
 *   requests, so each statement the manager runs opens a Neon connection in the request that runs it; the
 *   statement settles when its rows arrive and the close goes to `waitUntil` after the response. A cache
 *   hit opens none.
 *
 * Environment (wrangler.toml [vars], secrets, or .dev.vars for `wrangler dev`):
 *   DATABASE_URL        Neon POOLED endpoint (`-pooler`) for the handlers. Required.
 *   SESSION_SYNC        The Durable Object binding (wrangler.toml). The isolates' sync host unless
 *                       SYNC_WORKER_URL is set.
 *   SESSION_SYNC_DATABASE_URL  (secret) The DIRECT endpoint, for the object's LISTEN connection (default
 *                       DATABASE_URL; a -pooler host is refused). SESSION_SYNC_FLUSH_INTERVAL_MS,
 *                       SESSION_SYNC_CLEANUP_INTERVAL_MS, SESSION_SYNC_IDLE_TIMEOUT_MS, ...: see SessionSyncEnv.
 *   SYNC_WORKER_URL     Base URL of a Node sync worker instead of the object. Unset and no SESSION_SYNC: no
 *                       sync client (cached sessions are then trusted for MAX_STALENESS_MS after they were read).
 *   SYNC_SECRET         The sync worker's shared secret (a secret: `wrangler secret put SYNC_SECRET`).
 *   NEON_WS_PROXY       Local development only: `host:port/path` of a WebSocket-to-TCP proxy in front
 *                       of a plain PostgreSQL (ws://, no TLS), e.g. `127.0.0.1:5433/v2`.
 *   MAX_STALENESS_MS    Manager's maxStaleness (default 1000).
 *   SYNC_INTERVAL_MS    Shortest time between feed polls (default 250).
 *   TOUCH_INTERVAL_MS   How often touches go to the sync worker (default 2000).
 *   SESSION_SCHEMA, SESSION_TABLE_PREFIX  Where the session tables are (defaults public, '').
 *   INSECURE_COOKIES    "1": cookie without Secure and without the __Host- prefix, for plain-http
 *                       development in browsers that refuse Secure cookies from http://localhost.
 */
import type { ExecutionContext } from 'hono';
import type { DurableObjectNamespaceLike, SessionConfig, SyncClientOptions } from 'pg-edge-session';
import type { SessionSyncEnv } from 'pg-edge-session/durable-object';
import { type NeonExecutor, neonSessions } from 'pg-edge-session/neon';
import { createExampleApp, type ExampleAttributes } from './app.ts';

// The sync host of this app: wrangler.toml binds it as SESSION_SYNC (class_name = "SessionSyncObject").
export { SessionSyncObject } from 'pg-edge-session/durable-object';

export interface Env extends SessionSyncEnv {
  SESSION_SYNC?: DurableObjectNamespaceLike;
  DATABASE_URL?: string;
  SYNC_WORKER_URL?: string;
  SYNC_SECRET?: string;
  NEON_WS_PROXY?: string;
  MAX_STALENESS_MS?: string;
  SYNC_INTERVAL_MS?: string;
  TOUCH_INTERVAL_MS?: string;
  SESSION_SCHEMA?: string;
  SESSION_TABLE_PREFIX?: string;
  INSECURE_COOKIES?: string;
}

class EnvError extends Error {}

function ms(env: Env, name: keyof Env, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new EnvError(`${name} must be a number of milliseconds, got ${JSON.stringify(raw)}`);
  return n;
}

/** A worker outage fails every poll: one log line per interval, not one per request. */
function warnAtMostEvery(intervalMs: number, warn: (error: unknown, suppressed: number) => void): (error: unknown) => void {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    warn(error, suppressed);
    last = now;
    suppressed = 0;
  };
}

interface Isolate {
  app: ReturnType<typeof createExampleApp>;
  /** The executor: its connections close after the response (`db.closed()` in `waitUntil`). */
  db: NeonExecutor;
}

/** Built on the first request (module workers see `env` only then) and kept for the isolate's life. */
let isolate: Isolate | undefined;

function setUp(env: Env): Isolate {
  const databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) throw new EnvError('DATABASE_URL is not set (wrangler.toml [vars], a secret, or .dev.vars)');

  const config: SessionConfig = {
    maxStaleness: ms(env, 'MAX_STALENESS_MS', 1000),
    // The demo shows why sessions ended (device list, "revoked from another device").
    audit: true,
    ...(env.SESSION_SCHEMA ? { schemaName: env.SESSION_SCHEMA } : {}),
    ...(env.SESSION_TABLE_PREFIX ? { tablePrefix: env.SESSION_TABLE_PREFIX } : {}),
  };
  const target: Pick<SyncClientOptions, 'workerUrl' | 'secret' | 'durableObject'> | undefined = env.SYNC_WORKER_URL
    ? { workerUrl: env.SYNC_WORKER_URL, ...(env.SYNC_SECRET ? { secret: env.SYNC_SECRET } : {}) }
    : env.SESSION_SYNC
      ? { durableObject: env.SESSION_SYNC }
      : undefined;
  const { manager, sync, db } = neonSessions<ExampleAttributes>({
    databaseUrl,
    config,
    // application_name: find the example's connections in pg_stat_activity.
    applicationName: 'pg-edge-session-example',
    // A local PostgreSQL behind a WebSocket-to-TCP proxy (plain ws://, no TLS); never in production.
    ...(env.NEON_WS_PROXY ? { wsProxy: env.NEON_WS_PROXY } : {}),
    ...(target
      ? {
          sync: {
            ...target,
            syncInterval: ms(env, 'SYNC_INTERVAL_MS', 250),
            touchInterval: ms(env, 'TOUCH_INTERVAL_MS', 2000),
            onError: warnAtMostEvery(30_000, (e, suppressed) =>
              console.warn(
                `[example] sync host request failed (the isolate falls back to the database)${suppressed > 0 ? `, ${suppressed} more since the last warning` : ''}:`,
                String(e),
              ),
            ),
          },
        }
      : {}),
  });
  const insecure = env.INSECURE_COOKIES === '1';
  const app = createExampleApp({
    manager,
    // The notices' own table (example/notices.ts) goes through the same per-statement connections.
    db,
    ...(sync === undefined ? {} : { sync }),
    ...(insecure ? { cookie: { prefix: 'none', secure: false } } : {}),
    runtime: 'Cloudflare Workers',
  });
  return { app, db };
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    let it: Isolate;
    try {
      isolate ??= setUp(env);
      it = isolate;
    } catch (e) {
      // Configuration errors only; never echo the environment itself.
      const msg = e instanceof EnvError || (e as { code?: unknown })?.code === 'CONFIG_INVALID' ? (e as Error).message : 'setup failed';
      console.error('[example] setup failed:', e);
      return new Response(`Misconfigured: ${msg}\n`, { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' } });
    }

    try {
      return await it.app.fetch(request, env, ctx);
    } finally {
      ctx.waitUntil(it.db.closed());
    }
  },
};
