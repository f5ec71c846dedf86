// A Worker for test/system/bundle-init.test.ts: every edge entry a user's Worker may import together —
// pg-edge-session/host (neonHostDb, whose dynamic import of Neon's driver stays in the bundle),
// /durable-object, /neon and /hyperdrive. esbuild makes the modules that dynamic import reaches lazily
// initialised, drizzle-orm's `sql` among them; with pg-edge-session/host imported first, src/db/ is evaluated
// before anything has initialised `sql` (before src/db/ built no SQL at module evaluation, that Worker failed to
// start: "sql.raw is not a function"). POST /login signs in, GET /me reads the cookie's session, POST /logout
// ends it (an audited statement); GET /entries and /host-db use what was imported.
// biome-ignore-all assist/source/organizeImports: the import order is what this Worker is about
import { neonHostDb } from 'pg-edge-session/host';
import { Hono } from 'hono';
import { SessionSyncObject } from 'pg-edge-session/durable-object';
import type { SessionEnv } from 'pg-edge-session/hono';
import { hyperdriveSessionMiddleware } from 'pg-edge-session/hyperdrive';
import { neonSessionMiddleware } from 'pg-edge-session/neon';

export { SessionSyncObject };

type Bindings = { DATABASE_URL: string; NEON_WS_PROXY: string; SESSION_SCHEMA: string };
const app = new Hono<{ Bindings: Bindings } & SessionEnv<{ theme: string }>>();
app.get('/entries', (c) =>
  c.json([SessionSyncObject, neonHostDb, hyperdriveSessionMiddleware, neonSessionMiddleware].map((f) => typeof f)),
);
// neonHostDb called (it only connects at its first use), so its dynamic import is code the bundle keeps.
app.get('/host-db', (c) => c.json(typeof neonHostDb({ databaseUrl: c.env.DATABASE_URL }).end));
app.use(
  neonSessionMiddleware((env: Bindings) => ({
    databaseUrl: env.DATABASE_URL,
    wsProxy: env.NEON_WS_PROXY,
    applicationName: 'pges-bundle-init-test',
    config: { schemaName: env.SESSION_SCHEMA, audit: true },
    cookie: { prefix: 'none', secure: false },
    csrf: false,
  })),
);
app.post('/login', async (c) => c.json({ id: (await c.var.session.login(c.req.query('user') ?? 'user', { theme: 'light' })).id }));
app.get('/me', async (c) => c.json((await c.var.session.get())?.id ?? null));
app.post('/logout', async (c) => {
  await c.var.session.destroy();
  return c.json(null);
});
app.onError((e, c) => c.text(e.message, 500));
export default app;
