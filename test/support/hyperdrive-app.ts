// The Worker test/drivers/hyperdrive.test.ts runs in workerd: pg-edge-session/hyperdrive with node-postgres or
// postgres.js (the DRIVER binding) over a Hyperdrive binding (Miniflare's local connection: real TCP sockets
// to the local PostgreSQL), the sync client talking to SessionSyncObject through its binding. The Client
// (or postgres function) it passes records what the library sends through it (names of prepared
// statements, closes still under way) for the /__test/ routes. /own-count is the app's own query through
// drizzle-orm's postgres-js driver, a client per request as Cloudflare's Hyperdrive guide has it.
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { Hono } from 'hono';
import pg from 'pg';
import type { DurableObjectNamespaceLike } from 'pg-edge-session';
import type { SessionSyncEnv } from 'pg-edge-session/durable-object';
import type { SessionEnv } from 'pg-edge-session/hono';
import { hyperdriveSessionMiddleware, type PostgresJsFactory } from 'pg-edge-session/hyperdrive';
import postgres from 'postgres';

export { SessionSyncObject } from 'pg-edge-session/durable-object';

export interface HyperdriveAppEnv extends SessionSyncEnv {
  HYPERDRIVE: { connectionString: string };
  SESSION_SYNC: DurableObjectNamespaceLike;
  MAX_STALENESS_MS: string;
  SYNC_INTERVAL_MS: string;
  DRIVER: 'node-postgres' | 'postgres-js';
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

/** postgres.js as the app passes it, recording what the library's statements were prepared as. */
const recordingPostgres: PostgresJsFactory = (url, options) => {
  const client = postgres(url, options);
  return {
    options: client.options,
    async unsafe(text, values, queryOptions) {
      const rows = await client.unsafe(text, values, queryOptions);
      // postgres.js' record of the statement it sent: its name in Parse and Bind ('' when unnamed).
      if (rows.statement.name !== '') named.push(rows.statement.name);
      return rows;
    },
    async end() {
      closing++;
      try {
        if (slowClose > 0) await new Promise((r) => setTimeout(r, slowClose));
        await client.end();
      } finally {
        closing--;
      }
    },
  };
};

const APPLICATION_NAME = 'pges-hyperdrive-test';
type Attrs = { theme: string };
const app = new Hono<{ Bindings: HyperdriveAppEnv } & SessionEnv<Attrs>>();
app.use(
  hyperdriveSessionMiddleware((env: HyperdriveAppEnv) => ({
    hyperdrive: env.HYPERDRIVE,
    ...(env.DRIVER === 'postgres-js' ? { postgres: recordingPostgres } : { Client: RecordingClient }),
    applicationName: APPLICATION_NAME,
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
app.get('/own-count', async (c) => {
  // The app's own statement: a postgres.js client for this request, closed in waitUntil after the response.
  const client = postgres(c.env.HYPERDRIVE.connectionString, {
    max: 5,
    fetch_types: false,
    connection: { application_name: APPLICATION_NAME },
  });
  const db = drizzle(client);
  const rows = await db.execute<{ n: number }>(
    sql`SELECT count(*)::int AS n FROM ${sql.identifier(c.env.SESSION_SCHEMA ?? 'public')}.sessions WHERE user_id = ${c.req.query('user') ?? ''}`,
  );
  c.executionCtx.waitUntil(client.end());
  return c.json({ n: rows[0]?.n ?? null });
});
app.get('/__test/named', (c) => c.json(named));
app.get('/__test/closing', (c) => c.json({ closing }));
app.post('/__test/slow-close', (c) => {
  slowClose = Number(c.req.query('ms') ?? '0');
  return c.json({ slowClose });
});

export default app;
