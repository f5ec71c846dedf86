// A Worker for test/core/touch-flush.test.ts: README's Workers setup without a sync host (neonSessionMiddleware,
// no `sync`), a short lastAccessUpdateInterval; GET / reads the cookie's session.
import { Hono } from 'hono';
import type { SessionEnv } from '../../src/hono.ts';
import { neonSessionMiddleware } from '../../src/neon.ts';

type Bindings = { DATABASE_URL: string; NEON_WS_PROXY: string; SESSION_SCHEMA: string };
const app = new Hono<{ Bindings: Bindings } & SessionEnv>();
app.use(
  neonSessionMiddleware((env: Bindings) => ({
    databaseUrl: env.DATABASE_URL,
    wsProxy: env.NEON_WS_PROXY,
    config: { schemaName: env.SESSION_SCHEMA, lastAccessUpdateInterval: 1000 },
  })),
);
app.get('/', async (c) => c.text(String((await c.var.session.get())?.userId ?? null)));
export default app;
