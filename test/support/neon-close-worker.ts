// A Worker for test/drivers/neon-close.test.ts: neonSessionMiddleware through the WebSocket proxy, no sync host;
// POST /login signs in, GET /me reads the cookie's session.
import { Hono } from 'hono';
import type { SessionEnv } from '../../src/hono.ts';
import { neonSessionMiddleware } from '../../src/neon.ts';

type Bindings = { DATABASE_URL: string; NEON_WS_PROXY: string; SESSION_SCHEMA: string };
const app = new Hono<{ Bindings: Bindings } & SessionEnv>();
app.use(
  neonSessionMiddleware((env: Bindings) => ({
    databaseUrl: env.DATABASE_URL,
    wsProxy: env.NEON_WS_PROXY,
    applicationName: 'pges-neon-close-test',
    config: { schemaName: env.SESSION_SCHEMA },
    cookie: { prefix: 'none', secure: false },
    csrf: false,
  })),
);
app.post('/login', async (c) => c.json({ id: (await c.var.session.login(c.req.query('user') ?? 'user')).id }));
app.get('/me', async (c) => c.json((await c.var.session.get())?.id ?? null));
export default app;
