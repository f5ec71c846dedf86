// What the middleware does with the session cookie beyond the single-cookie basics (test/middleware/hono.test.ts):
// - responses that set or clear it are `Cache-Control: no-store` (ARCHITECTURE.md, promise 16);
// - several cookies of the session's name in one request. Reported: `Cookie:
//   __Host-session=<stale>; __Host-session=<valid>` was treated as signed out and answered with a clearing
//   Set-Cookie, which in a browser deletes the valid cookie. A browser sends every cookie whose Domain and
//   Path match, so with prefix `__Secure-` or `'none'` a sibling subdomain can plant such a duplicate.
// Both drivers, through app.request(), against the real database.
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import { generateToken } from '../../src/core/token.ts';
import { type SessionCookieOptions, type SessionEnv, type SessionMiddlewareOptions, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

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

/** A Cookie header with these values of the session cookie, in this order (as a browser would send them). */
function dup(...values: string[]): string {
  return values.map((v) => `${COOKIE}=${v}`).join('; ');
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

describe.each(DRIVERS)('several cookies of the session name (%s)', (driver) => {
  const fx = useStore(driver, 'dupcookie');

  function setup(config: Parameters<StoreFixture['manager']>[0] = {}, options: Partial<SessionMiddlewareOptions<Attrs>> = {}) {
    const clock = fakeClock();
    // No cache: every lookup is one statement, so the counts below are the lookups made.
    // The file's tests share user ids in one schema: no maxSessions eviction between them.
    const m = fx.manager<Attrs>({ clock, cacheSize: 0, maxSessions: 1000, ...config });
    return { m, clock, app: buildApp(m, options) };
  }

  async function exists(m: SessionManager<Attrs>, id: string): Promise<boolean> {
    const r = await fx.t.admin.query(`SELECT 1 FROM ${m.names.sessions} WHERE id = $1`, [id]);
    return r.rowCount === 1;
  }

  /** A token whose session is gone: rotated away (as a stale cookie would hold). */
  async function staleToken(m: SessionManager<Attrs>, userId: string): Promise<string> {
    const { token } = await m.createSession(userId);
    expect(await m.rotate(token)).not.toBeNull();
    return token;
  }

  it('the reported case: a stale cookie next to the valid one, in either order, keeps the user signed in and clears nothing', async () => {
    const { m, app } = setup();
    const own = await m.createSession('alice');
    const rotatedAway = await staleToken(m, 'alice');
    const destroyed = (await m.createSession('alice')).token;
    await m.deleteSession(destroyed);
    for (const stale of [rotatedAway, destroyed, generateToken()]) {
      for (const header of [dup(stale, own.token), dup(own.token, stale)]) {
        m.db.reset();
        const res = await send(app, 'GET', '/me', header);
        expect(await meOf(res), header).toEqual({ id: own.session.id, userId: 'alice' });
        expect(res.headers.getSetCookie(), header).toEqual([]);
        expect(res.headers.get('cache-control')).toBe('private, max-age=60');
        expect(m.db.count).toBe(2); // one lookup per distinct well-formed value
      }
    }
    // And it writes: a POST through the duplicate header saves to the user's own session.
    expect((await send(app, 'POST', '/set', dup(rotatedAway, own.token))).status).toBe(200);
    expect((await m.getSession(own.token))?.get('a')).toBe(1);
  });

  it.each<[string, SessionCookieOptions]>([
    ['__Host- (default)', {}],
    ['__Secure- with a Domain (a sibling can plant it)', { prefix: '__Secure-', domain: 'app.example' }],
    ["'none' (plain-http development)", { prefix: 'none', secure: false }],
  ])(
    'a planted live session of another user next to the user’s own (%s): signed out for the request, nothing cleared or deleted',
    async (_, cookie) => {
      const { m, app } = setup({}, { cookie });
      const name = cookie.prefix === 'none' ? 'session' : `${cookie.prefix ?? '__Host-'}session`;
      const own = await m.createSession('alice');
      const planted = await m.createSession('mallory');
      m.takePendingTouches();
      for (const [a, b] of [
        [planted.token, own.token],
        [own.token, planted.token],
      ] as const) {
        const header = `${name}=${a}; other=1; ${name}=${b}`;
        const res = await send(app, 'GET', '/me', header);
        // Not mallory's session (fixation), not alice's (the header cannot tell which is hers)...
        expect(await meOf(res), header).toBeNull();
        // ...and no clearing Set-Cookie: in a browser it would delete alice's own cookie, not the planted one.
        expect(res.headers.getSetCookie(), header).toEqual([]);
        // A write through such a request finds no session and writes nothing.
        expect((await send(app, 'POST', '/set', header)).status).toBe(401);
      }
      expect(await exists(m, own.session.id)).toBe(true);
      expect(await exists(m, planted.session.id)).toBe(true);
      expect((await m.getSession(own.token, { forceRefresh: true }))?.get('a')).toBeUndefined();
      // Once the planted cookie is gone, the user's own cookie signs them in as before.
      expect(await meOf(await send(app, 'GET', '/me', `${name}=${own.token}`))).toMatchObject({ userId: 'alice' });
    },
  );

  it('two live sessions of one user: the most recently created one, whatever the order; nothing cleared', async () => {
    const { m, clock, app } = setup();
    const older = await m.createSession('alice');
    clock.advance(1000);
    const newer = await m.createSession('alice');
    m.takePendingTouches();
    for (const header of [dup(older.token, newer.token), dup(newer.token, older.token), dup(older.token, generateToken(), newer.token)]) {
      const res = await send(app, 'GET', '/me', header);
      expect(await meOf(res), header).toEqual({ id: newer.session.id, userId: 'alice' });
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    // Both were presented by the user's browser: both are in use (idle expiry counts from their last use).
    expect(m.pendingTouchCount).toBe(2);
  });

  it('a touch callback gets the session in use, and nothing when the duplicates are ambiguous', async () => {
    const touched: string[] = [];
    const { m, app } = setup({}, { touch: (s) => void touched.push(s.userId) });
    const own = await m.createSession('alice');
    const planted = await m.createSession('mallory');
    const stale = await staleToken(m, 'alice');
    await meOf(await send(app, 'GET', '/me', dup(planted.token, own.token)));
    await meOf(await send(app, 'GET', '/me', dup(stale, own.token)));
    await new Promise((resolve) => setTimeout(resolve, 10)); // the callback runs after the response
    expect(touched).toEqual(['alice']);
  });

  it('duplicates that are all dead or malformed: signed out and the cookie cleared, as for one dead cookie', async () => {
    const { m, app } = setup();
    const dead1 = await staleToken(m, 'alice');
    const dead2 = await staleToken(m, 'bob');
    for (const header of [dup(dead1, dead2), dup('junk', dead1), dup('junk', ''), dup(dead1, dead1)]) {
      const res = await send(app, 'GET', '/me', header);
      expect(await meOf(res), header).toBeNull();
      expect(res.headers.getSetCookie(), header).toEqual([expect.stringMatching(CLEARED)]);
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('malformed values cost no query, a repeated value is looked up once, a crafted header at most 3 lookups', async () => {
    const { m, app } = setup();
    const own = await m.createSession('alice');
    const unknown = () => generateToken();
    const cases: [string, number, boolean][] = [
      [dup('junk', own.token), 1, true],
      [dup(own.token, own.token, own.token), 1, true],
      [dup('', `${own.token.slice(0, 42)}B`, 'A'.repeat(4096), `"${own.token}"`, own.token), 1, true],
      [dup(...Array.from({ length: 200 }, (_, i) => `junk${i}`), own.token), 1, true],
      [dup(unknown(), unknown(), own.token), 3, true],
      // More than 3 distinct well-formed values: only a crafted header has them. No lookup, no session,
      // and no clearing (the user's own cookie may be among them).
      [dup(unknown(), unknown(), unknown(), own.token), 0, false],
      [dup(own.token, ...Array.from({ length: 50 }, unknown)), 0, false],
    ];
    for (const [header, lookups, signedIn] of cases) {
      m.db.reset();
      const res = await send(app, 'GET', '/me', header);
      expect((await meOf(res))?.userId ?? null, header.slice(0, 200)).toBe(signedIn ? 'alice' : null);
      expect(m.db.count, header.slice(0, 200)).toBe(lookups);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
  });

  it('one cookie among others costs one lookup; a name that merely contains the session name is another cookie', async () => {
    const { m, app } = setup();
    const own = await m.createSession('alice');
    m.db.reset();
    expect(await meOf(await send(app, 'GET', '/me', `a=1; ${COOKIE}=${own.token}; b=2`))).toMatchObject({ userId: 'alice' });
    expect(m.db.count).toBe(1);
    expect(await meOf(await send(app, 'GET', '/me', `a=1;${COOKIE} = ${own.token} ;b=2`))).toMatchObject({ userId: 'alice' });
    m.db.reset();
    const other = await send(app, 'GET', '/me', `x${COOKIE}=${own.token}; ${COOKIE}x=${own.token}`);
    expect(await meOf(other)).toBeNull();
    expect(m.db.count).toBe(0);
    expect(other.headers.getSetCookie()).toEqual([]);
  });

  it.each(['/login/alice', '/relogin/alice'])(
    '%s with duplicates: a new token, and every session the cookies named is deleted (own and planted)',
    async (path) => {
      const { m, app } = setup();
      const own = await m.createSession('alice');
      const planted = await m.createSession('mallory');
      const stale = await staleToken(m, 'alice');
      const res = await send(app, 'POST', path, dup(planted.token, stale, own.token));
      expect(res.status).toBe(200);
      const [line] = res.headers.getSetCookie();
      const issued = ISSUED.exec(line ?? '')?.[1];
      expect(issued).toBeDefined();
      expect([own.token, planted.token, stale]).not.toContain(issued);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const { id } = (await res.json()) as { id: string };
      expect(await exists(m, own.session.id)).toBe(false);
      expect(await exists(m, planted.session.id)).toBe(false);
      // The browser still sends the planted cookie (another Path/Domain): it is dead now, so the new session wins.
      const next = await send(app, 'GET', '/me', dup(planted.token, issued!));
      expect(await meOf(next)).toEqual({ id, userId: 'alice' });
      expect(next.headers.getSetCookie()).toEqual([]);
    },
  );

  it('destroy with duplicates deletes every session they name and clears the cookie: the user is signed out', async () => {
    const { m, clock, app } = setup();
    const older = await m.createSession('alice');
    clock.advance(1000);
    const newer = await m.createSession('alice');
    const header = dup(newer.token, older.token);
    const res = await send(app, 'POST', '/logout', header);
    expect(await res.json()).toEqual({ deleted: true });
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    expect(await exists(m, older.session.id)).toBe(false);
    expect(await exists(m, newer.session.id)).toBe(false);
    // Whichever of the two the browser keeps (the clearing hits only one), it signs nobody in.
    expect(await meOf(await send(app, 'GET', '/me', dup(older.token)))).toBeNull();
  });

  it('rotate with duplicates rotates the session in use; the stale duplicate stays harmless', async () => {
    const { m, app } = setup();
    const own = await m.createSession('alice');
    const stale = await staleToken(m, 'alice');
    const res = await send(app, 'POST', '/rotate', dup(stale, own.token));
    expect(await res.json()).toEqual({ id: own.session.id });
    const issued = ISSUED.exec(res.headers.getSetCookie()[0] ?? '')?.[1];
    expect(issued).toBeDefined();
    expect(await m.getSession(own.token, { forceRefresh: true })).toBeNull();
    const next = await send(app, 'GET', '/me', dup(stale, issued!));
    expect(await meOf(next)).toEqual({ id: own.session.id, userId: 'alice' });
    expect(next.headers.getSetCookie()).toEqual([]);
  });

  it('ambiguous duplicates: rotate has nothing to rotate and sets no cookie', async () => {
    const { m, app } = setup();
    const own = await m.createSession('alice');
    const planted = await m.createSession('mallory');
    const res = await send(app, 'POST', '/rotate', dup(planted.token, own.token));
    expect(await res.json()).toEqual({ id: null });
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(await m.getSession(own.token, { forceRefresh: true })).not.toBeNull();
    expect(await m.getSession(planted.token, { forceRefresh: true })).not.toBeNull();
  });

  it('the session in use deleted while the handler ran (duplicates): the save fails and nothing is cleared', async () => {
    const { m, clock, app } = setup();
    app.post('/set-after-revoke', async (c) => {
      const s = (await c.var.session.get())!;
      await m.deleteSessionById(s.id);
      s.set('a', 1);
      return c.text('ok');
    });
    const older = await m.createSession('alice');
    clock.advance(1000);
    const newer = await m.createSession('alice');
    const res = await send(app, 'POST', '/set-after-revoke', dup(older.token, newer.token));
    expect(await res.json()).toEqual({ error: 'SESSION_NOT_FOUND' });
    // The clearing would hit the cookie with the middleware's attributes: possibly the other, live one.
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(await meOf(await send(app, 'GET', '/me', dup(older.token, newer.token)))).toEqual({ id: older.session.id, userId: 'alice' });
  });
});
