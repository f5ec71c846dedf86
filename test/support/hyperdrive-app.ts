// The Worker test/hyperdrive.test.ts runs in workerd: pg-edge-session/hyperdrive with node-postgres over a
// Hyperdrive binding (Miniflare's local connection: real TCP sockets to the local PostgreSQL), the sync
// client talking to SessionSyncObject through its binding. The Client it passes records what the library
// sends through it (names of prepared statements, closes still under way) for the /__test/ routes.
import { Hono } from 'hono';
import pg from 'pg';
import type { DurableObjectNamespaceLike } from 'pg-edge-session';
import type { SessionSyncEnv } from 'pg-edge-session/durable-object';
import type { SessionEnv } from 'pg-edge-session/hono';
import { hyperdriveSessionMiddleware } from 'pg-edge-session/hyperdrive';

export { SessionSyncObject } from 'pg-edge-session/durable-object';

export interface HyperdriveAppEnv extends SessionSyncEnv {
  HYPERDRIVE: { connectionString: string };
  SESSION_SYNC: DurableObjectNamespaceLike;
  MAX_STALENESS_MS: string;
  SYNC_INTERVAL_MS: string;
}

/** Names of the prepared statements the library sent through the client, in order. */
const named: string[] = [];
/** Closes (`end()`) started and not yet finished; `slowClose` holds each one back this long. */
let closing = 0;
let slowClose = 0;

class RecordingClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: node-postgres' overloads
  override query(config: any, ...rest: any[]): any {
    if (typeof config === 'object' && config !== null && typeof config.name === 'string') named.push(config.name);
    // biome-ignore lint/suspicious/noExplicitAny: node-postgres' overloads
    return (super.query as any)(config, ...rest);
  }
  override async end(): Promise<void> {
    closing++;
    try {
      if (slowClose > 0) await new Promise((r) => setTimeout(r, slowClose));
      await super.end();
    } finally {
      closing--;
    }
  }
}

type Attrs = { theme: string };
const app = new Hono<{ Bindings: HyperdriveAppEnv } & SessionEnv<Attrs>>();
app.use(
  hyperdriveSessionMiddleware((env: HyperdriveAppEnv) => ({
    hyperdrive: env.HYPERDRIVE,
    Client: RecordingClient,
    applicationName: 'pges-hyperdrive-test',
    config: { schemaName: env.SESSION_SCHEMA, maxStaleness: Number(env.MAX_STALENESS_MS) },
    sync: { durableObject: env.SESSION_SYNC, syncInterval: Number(env.SYNC_INTERVAL_MS), touchInterval: 0 },
    cookie: { prefix: 'none', secure: false },
    csrf: false,
  })),
);
app.post('/login', async (c) => {
  const s = await c.var.session.login(c.req.query('user') ?? 'user', { theme: 'light' });
  return c.json({ id: s.id });
});
app.get('/me', async (c) => c.json((await c.var.session.get())?.toJSON() ?? null));
app.post('/theme', async (c) => {
  const s = await c.var.session.get();
  if (s === null) return c.json(null, 401);
  s.set('theme', c.req.query('theme') ?? 'dark');
  return c.json({ ok: true });
});
app.post('/logout', async (c) => c.json({ deleted: await c.var.session.destroy() }));
app.get('/__test/named', (c) => c.json(named));
app.get('/__test/closing', (c) => c.json({ closing }));
app.post('/__test/slow-close', (c) => {
  slowClose = Number(c.req.query('ms') ?? '0');
  return c.json({ slowClose });
});

export default app;
