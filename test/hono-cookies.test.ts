// What the middleware does with the session cookie beyond the single-cookie basics (test/hono.test.ts):
// - responses that set or clear it are `Cache-Control: no-store` (DESIGN.md promise 16; issue 9 item 2).
// Both drivers, through app.request(), against the real database.
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { describe, expect, it } from 'vitest';
import { type SessionEnv, type SessionMiddlewareOptions, sessionMiddleware } from '../src/hono.ts';
import type { SessionManager } from '../src/manager.ts';
import { CookieJar } from './support/cookies.ts';
import { DRIVERS, fakeClock } from './support/db.ts';
import { useStore } from './support/store-suite.ts';

type Attrs = { a: number; theme: string };

const COOKIE = '__Host-session';
const TOKEN = '[A-Za-z0-9_-]{43}';
const CLEARED = new RegExp(`^${COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax$`);
const ISSUED = new RegExp(`^${COOKIE}=(${TOKEN}); Max-Age=\\d+; Path=/; HttpOnly; Secure; SameSite=Lax$`);

function buildApp(manager: SessionManager<Attrs>, options: Partial<SessionMiddlewareOptions<Attrs>> = {}) {
  const app = new Hono<SessionEnv<Attrs>>();
  app.onError((e, c) => {
    if (e instanceof HTTPException) return e.getResponse();
    return c.json({ error: (e as { code?: string }).code ?? e.message }, 500);
  });
  app.use(sessionMiddleware<Attrs>({ manager, ...options }));
  app.get('/plain', (c) => {
    c.header('cache-control', 'public, max-age=600');
    return c.text('plain');
  });
  app.get('/me', async (c) => {
    c.header('cache-control', 'private, max-age=60'); // a handler's own header: replaced only with a cookie change
    const s = await c.var.session.get();
    return c.json(s && { id: s.id, userId: s.userId });
  });
  app.post('/login/:user', async (c) => {
    c.header('cache-control', 'public, max-age=600');
    const s = await c.var.session.login(c.req.param('user'));
    return c.json({ id: s.id });
  });
  app.post('/relogin/:user', async (c) => {
    await c.var.session.get(); // loaded first, then signed in anew
    return c.json({ id: (await c.var.session.login(c.req.param('user'))).id });
  });
  app.post('/rotate', async (c) => c.json({ id: (await c.var.session.rotate())?.id ?? null }));
  app.post('/logout', async (c) => c.json({ deleted: await c.var.session.destroy() }));
  app.post('/set', async (c) => {
    const s = await c.var.session.get();
    if (s === null) return c.text('no session', 401);
    s.set('a', (s.get('a') ?? 0) + 1);
    return c.text('ok');
  });
  for (const action of ['login', 'rotate', 'destroy'] as const) {
    for (const how of ['error', 'http-exception'] as const) {
      app.post(`/${action}-then-${how}`, async (c) => {
        if (action === 'login') await c.var.session.login('alice');
        if (action === 'rotate') await c.var.session.rotate();
        if (action === 'destroy') await c.var.session.destroy();
        if (how === 'error') throw new Error('handler failed after the cookie change');
        throw new HTTPException(409, { message: 'conflict after the cookie change' });
      });
    }
  }
  return app;
}

function send(app: Hono<SessionEnv<Attrs>>, method: string, path: string, cookie?: string) {
  return Promise.resolve(app.request(`https://app.example${path}`, { method, headers: cookie === undefined ? {} : { cookie } }));
}

async function meOf(res: Response): Promise<{ id: string; userId: string } | null> {
  expect(res.status).toBe(200);
  return (await res.json()) as { id: string; userId: string } | null;
}

describe.each(DRIVERS)('Cache-Control: no-store on cookie changes (%s)', (driver) => {
  const fx = useStore(driver, 'nostore');

  function setup() {
    // The file's tests share user ids in one schema: no maxSessions eviction between them.
    const m = fx.manager<Attrs>({ clock: fakeClock(), maxSessions: 1000 });
    return { m, app: buildApp(m) };
  }

  async function signedIn(app: Hono<SessionEnv<Attrs>>): Promise<string> {
    const res = await send(app, 'POST', '/login/alice');
    return new CookieJar().take(res).header();
  }

  it('login, rotate, destroy and clearing a dead cookie: Set-Cookie with no-store, replacing the handler’s Cache-Control', async () => {
    const { app } = setup();
    const login = await send(app, 'POST', '/login/alice');
    expect(login.headers.getSetCookie()).toEqual([expect.stringMatching(ISSUED)]);
    expect(login.headers.get('cache-control')).toBe('no-store');
    const cookie = new CookieJar().take(login).header();

    const rotate = await send(app, 'POST', '/rotate', cookie);
    expect(rotate.headers.getSetCookie()).toEqual([expect.stringMatching(ISSUED)]);
    expect(rotate.headers.get('cache-control')).toBe('no-store');
    const rotated = new CookieJar().take(rotate).header();

    const stale = await send(app, 'GET', '/me', cookie); // the rotated-away token: cleared
    expect(await meOf(stale)).toBeNull();
    expect(stale.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    expect(stale.headers.get('cache-control')).toBe('no-store');

    const junk = await send(app, 'GET', '/me', `${COOKIE}=junk`);
    expect(junk.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    expect(junk.headers.get('cache-control')).toBe('no-store');

    const logout = await send(app, 'POST', '/logout', rotated);
    expect(logout.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    expect(logout.headers.get('cache-control')).toBe('no-store');
  });

  it('no cookie change, no no-store: the handler’s own Cache-Control stays', async () => {
    const { app } = setup();
    const cookie = await signedIn(app);
    const cases: [string, string, string | undefined, string | null][] = [
      ['GET', '/plain', cookie, 'public, max-age=600'],
      ['GET', '/me', cookie, 'private, max-age=60'],
      ['GET', '/me', undefined, 'private, max-age=60'],
      ['POST', '/set', cookie, null],
      ['POST', '/rotate', undefined, null], // no session: nothing to rotate, nothing sent
      ['POST', '/logout', undefined, null],
    ];
    for (const [method, path, c, expected] of cases) {
      const res = await send(app, method, path, c);
      expect(res.status, path).toBeLessThan(300);
      expect(res.headers.getSetCookie(), path).toEqual([]);
      expect(res.headers.get('cache-control'), path).toBe(expected);
    }
  });

  it.each(['error', 'http-exception'])(
    'login/rotate/destroy in a handler that then threw (%s): the cookie change and no-store are sent',
    async (how) => {
      const { app } = setup();
      for (const action of ['login', 'rotate', 'destroy']) {
        const cookie = await signedIn(app);
        const res = await send(app, 'POST', `/${action}-then-${how}`, cookie);
        expect(res.status, action).toBe(how === 'error' ? 500 : 409);
        expect(res.headers.getSetCookie(), action).toEqual([expect.stringMatching(action === 'destroy' ? CLEARED : ISSUED)]);
        expect(res.headers.get('cache-control'), action).toBe('no-store');
      }
    },
  );

  it('a save that finds the session deleted clears the cookie from the error response, with no-store', async () => {
    const { m, app } = setup();
    app.post('/set-after-revoke', async (c) => {
      const s = (await c.var.session.get())!;
      await m.deleteAllUserSessions(s.userId); // signed out everywhere meanwhile
      s.set('a', 1);
      return c.text('ok');
    });
    const res = await send(app, 'POST', '/set-after-revoke', await signedIn(app));
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'SESSION_NOT_FOUND' });
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });
});
