// One HTTP server for the HTTP section, in its own process: `bare` (Hono, no session), `hono` (Hono +
// session middleware, cache hit), `express` (express + express-session + connect-pg-simple). Each
// route does the same work: find the user and answer { user }. Prints "listening <port>" and, for the
// session servers, "cookie <Cookie header>" of a signed-in session.
import { serve } from '@hono/node-server';
import connectPgSimple from 'connect-pg-simple';
import { drizzle } from 'drizzle-orm/node-postgres';
import express from 'express';
import session from 'express-session';
import { Hono } from 'hono';
import { getCookie } from 'hono/cookie';
import pg from 'pg';
import { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';

const [mode, url, schema] = process.argv.slice(2) as ['bare' | 'hono' | 'express', string, string];
const out = (s: string) => process.stdout.write(`${s}\n`);

if (mode === 'bare') {
  // The floor does the same work but the session lookup: it reads the cookie (which makes
  // @hono/node-server build the request's headers) and answers with a constant user.
  const app = new Hono();
  app.get('/me', (c) => c.json({ user: getCookie(c, 'session') === undefined ? null : 'user-http' }));
  serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
    out('cookie session=floor');
    out(`listening ${info.port}`);
  });
} else if (mode === 'hono') {
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  const manager = new SessionManager(drizzle(pool), { schemaName: schema });
  const { token } = await manager.createSession('user-http', { name: 'bench' });
  const app = new Hono<SessionEnv>();
  app.use(sessionMiddleware({ manager, cookie: { prefix: 'none', secure: false } }));
  app.get('/me', async (c) => {
    const s = await c.var.session.get();
    return c.json({ user: s?.userId ?? null });
  });
  serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
    out(`cookie session=${token}`);
    out(`listening ${info.port}`);
  });
} else {
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  const Store = connectPgSimple(session);
  const app = express();
  app.use(
    session({
      store: new Store({ pool, schemaName: schema, tableName: 'session', pruneSessionInterval: false }),
      secret: 'bench-secret-bench-secret-bench-secret',
      resave: false,
      saveUninitialized: false,
      cookie: { secure: false, httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.get('/login', (req, res) => {
    (req.session as unknown as { user: string }).user = 'user-http';
    res.json({ ok: true });
  });
  app.get('/me', (req, res) => {
    res.json({ user: (req.session as unknown as { user?: string }).user ?? null });
  });
  const server = app.listen(0, '127.0.0.1', async () => {
    const port = (server.address() as { port: number }).port;
    const r = await fetch(`http://127.0.0.1:${port}/login`);
    const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0];
    out(`cookie ${cookie}`);
    out(`listening ${port}`);
  });
}
