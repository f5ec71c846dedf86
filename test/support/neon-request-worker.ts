// A Worker for test/drivers/neon-request.test.ts: neonSessionMiddleware through the WebSocket proxy, no sync host.
// POST /login signs in; GET /me reads the cookie's session; POST /two runs two statements in one request
// (an attribute saved, then a step-up); POST /boom runs the same two, then throws; GET /pause waits for
// ?ms before answering with a statement (two of them in flight at once: their connections stay apart).
import { Hono } from 'hono';
import type { SessionEnv } from '../../src/hono.ts';
import { neonSessionMiddleware } from '../../src/neon.ts';

type Bindings = { DATABASE_URL: string; NEON_WS_PROXY: string; SESSION_SCHEMA: string };
const app = new Hono<{ Bindings: Bindings } & SessionEnv<{ theme: string }>>();
app.use(
  neonSessionMiddleware((env: Bindings) => ({
    databaseUrl: env.DATABASE_URL,
    wsProxy: env.NEON_WS_PROXY,
    applicationName: 'pges-neon-request-test',
    config: { schemaName: env.SESSION_SCHEMA, audit: true, lastAccessUpdateInterval: 1000, maxStaleness: 60_000 },
    cookie: { prefix: 'none', secure: false },
    csrf: false,
  })),
);
app.post('/login', async (c) => c.json({ id: (await c.var.session.login(c.req.query('user') ?? 'user', { theme: 'light' })).id }));
app.get('/me', async (c) => c.json((await c.var.session.get())?.id ?? null));
app.post('/two', async (c) => {
  const s = await c.var.session.get();
  if (s === null) return c.json(null, 401);
  s.set('theme', c.req.query('theme') ?? 'dark');
  await c.var.session.save();
  await c.var.session.reauthenticated();
  return c.json({ id: s.id, theme: s.get('theme') });
});
app.post('/boom', async (c) => {
  const s = await c.var.session.get();
  s?.set('theme', 'boom');
  await c.var.session.save();
  await c.var.session.reauthenticated();
  throw new Error(`boom after a statement for ${s?.id}`);
});
app.post('/pause', async (c) => {
  await new Promise((r) => setTimeout(r, Number(c.req.query('ms') ?? 0)));
  const s = await c.var.session.reauthenticated();
  await new Promise((r) => setTimeout(r, Number(c.req.query('ms') ?? 0)));
  await c.var.session.rotate();
  return c.json(s?.id ?? null);
});
app.onError((e, c) => c.text(e.message, 500));
export default app;
