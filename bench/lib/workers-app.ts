// The Worker bench/sections/workers.ts runs in workerd (Miniflare), one per Workers path (env.PATH):
//   neon-per-statement  Neon's driver, a connection per statement that awaits its close before the
//                       statement settles (pg-edge-session/neon before its closes moved to waitUntil);
//   neon                pg-edge-session/neon as it is (the close after the response, in waitUntil);
//   hyperdrive          pg-edge-session/hyperdrive with node-postgres over the Hyperdrive binding;
//   hyperdrive-postgres-js  the same with postgres.js.
// Each uses the Durable Object host (SESSION_SYNC) in poll mode. POST /__bench/cold drops the isolate's
// sessions (manager, cache, sync client, executor), so the next request is what a cold isolate's first
// request does on the network (module load time is not included).
import { Client } from '@neondatabase/serverless';
import type { SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/neon-serverless';
import { Hono, type MiddlewareHandler } from 'hono';
import pg from 'pg';
import postgres from 'postgres';
import { SessionManager } from '../../src/core/manager.ts';
import type { SqlExecutor } from '../../src/db/executor.ts';
import { neonSettings } from '../../src/drivers/neon/settings.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { hyperdriveSessionMiddleware } from '../../src/hyperdrive.ts';
import { neonSessionMiddleware } from '../../src/neon.ts';
import { type DurableObjectNamespaceLike, SyncClient } from '../../src/sync/client.ts';

export { SessionSyncObject } from '../../src/durable-object.ts';

interface Env {
  PATH: 'neon-per-statement' | 'neon' | 'hyperdrive' | 'hyperdrive-postgres-js';
  DATABASE_URL: string;
  NEON_WS_PROXY: string;
  HYPERDRIVE: { connectionString: string };
  /** The postgres.js path's binding: a connection string through its own delay proxy. */
  HYPERDRIVE_POSTGRES_JS: { connectionString: string };
  SESSION_SCHEMA: string;
  SESSION_SYNC: DurableObjectNamespaceLike;
}
type Attrs = { theme: string };
type Handler = MiddlewareHandler<SessionEnv<Attrs> & { Bindings: Env }>;

/** The Neon executor as it was: each statement awaits client.end() (the WebSocket's close) before it settles. */
function perStatementExecutor(env: Env): SqlExecutor {
  const settings = neonSettings(env.NEON_WS_PROXY);
  return {
    async execute(query: SQL) {
      const client = new Client({ connectionString: env.DATABASE_URL });
      Object.assign((client as unknown as { neonConfig: object }).neonConfig, settings);
      client.on('error', () => {});
      await client.connect();
      try {
        return await drizzle(client).execute(query);
      } finally {
        await client.end().catch(() => {});
      }
    },
  };
}

const common = (env: Env) => ({
  config: { schemaName: env.SESSION_SCHEMA },
  sync: { durableObject: env.SESSION_SYNC, mode: 'poll' as const },
  cookie: { prefix: 'none' as const, secure: false },
  csrf: false as const,
});

function build(env: Env): Handler {
  if (env.PATH === 'neon')
    return neonSessionMiddleware<Attrs, Env>(() => ({ databaseUrl: env.DATABASE_URL, wsProxy: env.NEON_WS_PROXY, ...common(env) }));
  if (env.PATH === 'hyperdrive')
    return hyperdriveSessionMiddleware<Attrs, Env>(() => ({ hyperdrive: env.HYPERDRIVE, Client: pg.Client, ...common(env) }));
  if (env.PATH === 'hyperdrive-postgres-js')
    return hyperdriveSessionMiddleware<Attrs, Env>(() => ({ hyperdrive: env.HYPERDRIVE_POSTGRES_JS, postgres, ...common(env) }));
  const { config, sync, ...rest } = common(env);
  const manager = new SessionManager<Attrs>(perStatementExecutor(env), config);
  return sessionMiddleware<Attrs>({ ...rest, manager, sync: new SyncClient(manager, sync) }) as unknown as Handler;
}

let sessions: Handler | undefined;
const app = new Hono<{ Bindings: Env } & SessionEnv<Attrs>>();
app.post('/__bench/cold', (c) => {
  sessions = undefined;
  return c.json({ cold: true });
});
app.use(async (c, next) => {
  sessions ??= build(c.env);
  return sessions(c, next);
});
app.post('/login', async (c) => c.json({ id: (await c.var.session.login(c.req.query('user') ?? 'user', { theme: 'light' })).id }));
app.get('/me', async (c) => c.json((await c.var.session.get())?.id ?? null));
app.post('/theme', async (c) => {
  const s = await c.var.session.get();
  if (s === null) return c.json(null, 401);
  s.set('theme', c.req.query('theme') ?? 'dark');
  return c.json({ ok: true });
});
app.post('/logout', async (c) => c.json({ deleted: await c.var.session.destroy() }));

export default app;
