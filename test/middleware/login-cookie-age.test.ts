// A sign-in answers with the cookie of the session it created, kept by the browser as long as the session
// lives. Seen in a chaos run (chaos/README.md, the HTTP process): a login of a short session (expiresAt a few
// seconds ahead) whose response was written under a second before that expiry answered 200 with
// `Set-Cookie: __Host-session=<token>; Max-Age=0`: Max-Age was the time left rounded down, so the browser
// dropped the cookie at once while the session was still alive for up to a second ("login answered 200
// without a session cookie"). The same held for a rotation. Max-Age now rounds up: the cookie never ends
// before its session (src/middleware/cookies.ts, honoCookieJar); a session already expired when the
// response is written still gets Max-Age=0. Both drivers, through app.request(), against the real database.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { useStore } from '../support/store-suite.ts';

const COOKIE = '__Host-session';
const TOKEN = '[A-Za-z0-9_-]{43}';

/** `lag`: how long (ms, on the manager's clock) the response takes after the login or rotation committed. */
function buildApp(manager: SessionManager, clock: ReturnType<typeof fakeClock>, lag: { ms: number }) {
  const app = new Hono<SessionEnv>();
  app.use(sessionMiddleware({ manager }));
  app.post('/login/:ttl', async (c) => {
    const s = await c.var.session.login('alice', {}, { expiresAt: clock() + Number(c.req.param('ttl')) });
    clock.advance(lag.ms); // a slow response: the cookie is written this much later
    return c.json({ id: s.id });
  });
  app.post('/rotate', async (c) => {
    const s = await c.var.session.rotate();
    clock.advance(lag.ms);
    return c.json({ rotated: s !== null });
  });
  app.get('/me', async (c) => c.json({ id: (await c.var.session.get())?.id ?? null }));
  return app;
}

function send(app: Hono<SessionEnv>, jar: CookieJar, path: string, method = 'GET') {
  const cookie = jar.header();
  return app.request(path, { method, headers: cookie ? { cookie } : {} });
}

describe.each(DRIVERS)('session cookie lifetime near expiry (%s)', (driver) => {
  const fx = useStore(driver, 'cookieage');

  function setup() {
    const clock = fakeClock();
    const lag = { ms: 0 };
    const m = fx.manager({ clock });
    return { m, clock, lag, app: buildApp(m, clock, lag), jar: new CookieJar() };
  }

  it('a login answered less than a second before its session expires sets a cookie the browser keeps until then', async () => {
    const { app, jar, lag } = setup();
    lag.ms = 700; // 1.5 s session, answered 0.7 s after the create: 0.8 s left
    const res = await send(app, jar, '/login/1500', 'POST');
    expect(res.status).toBe(200);
    const { id } = (await res.json()) as { id: string };
    const lines = res.headers.getSetCookie();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${COOKIE}=${TOKEN}; Max-Age=1; Path=/; HttpOnly; Secure; SameSite=Lax$`));
    jar.take(res);
    expect(jar.get()).toMatch(new RegExp(`^${TOKEN}$`));
    // The session is alive for 0.8 s more, and the browser still signs in with it.
    lag.ms = 0;
    const me = await send(app, jar, '/me');
    expect(await me.json()).toEqual({ id });
  });

  it('whole seconds left stay exact, and a part of a second counts as one more', async () => {
    const { app, jar, lag } = setup();
    lag.ms = 0;
    const exact = await send(app, jar, '/login/3000', 'POST');
    expect(exact.headers.getSetCookie()[0]).toContain('; Max-Age=3;');
    lag.ms = 1;
    const part = await send(app, new CookieJar(), '/login/3000', 'POST');
    expect(part.headers.getSetCookie()[0]).toContain('; Max-Age=3;');
  });

  it('a rotation answered less than a second before the session expires keeps the new token in the browser', async () => {
    const { app, jar, lag } = setup();
    jar.take(await send(app, jar, '/login/2000', 'POST'));
    const before = jar.get();
    lag.ms = 1300; // rotated right away, answered 1.3 s later: 0.7 s left
    const res = await send(app, jar, '/rotate', 'POST');
    expect(await res.json()).toEqual({ rotated: true });
    jar.take(res);
    expect(jar.get()).toMatch(new RegExp(`^${TOKEN}$`));
    expect(jar.get()).not.toBe(before);
    lag.ms = 0;
    expect(((await (await send(app, jar, '/me')).json()) as { id: string | null }).id).not.toBeNull();
  });

  it('a session already expired when its login is answered gets Max-Age=0 (the browser keeps no dead token)', async () => {
    const { app, jar, lag } = setup();
    lag.ms = 1500; // 1 s session answered 1.5 s after the create
    const res = await send(app, jar, '/login/1000', 'POST');
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()[0]).toMatch(new RegExp(`^${COOKIE}=${TOKEN}; Max-Age=0; `));
    jar.take(res);
    expect(jar.get()).toBeUndefined();
  });
});
