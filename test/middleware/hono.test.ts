// The Hono middleware through app.request(), against the real database on both drivers.
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import { ConfigError, VersionConflictError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import type { Session } from '../../src/core/session.ts';
import { generateToken } from '../../src/core/token.ts';
import { type SessionEnv, type SessionMiddlewareOptions, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

type Attrs = { theme: 'light' | 'dark'; cart: string[]; a: number; b: number; c: number };

const DAY = 24 * 3_600_000;
const COOKIE = '__Host-session';
const TOKEN = '[A-Za-z0-9_-]{43}';

function buildApp(manager: SessionManager<Attrs> & { db?: { reset(): void } }, options: Partial<SessionMiddlewareOptions<Attrs>> = {}) {
  const app = new Hono<SessionEnv<Attrs>>();
  app.use(sessionMiddleware<Attrs>({ manager, ...options }));
  app.get('/plain', (c) => c.text('plain'));
  app.get('/me', async (c) => {
    const s = await c.var.session.get();
    return c.json(s && { id: s.id, userId: s.userId, attributes: s.toObject() });
  });
  app.get('/me-twice', async (c) => {
    const [a, b] = await Promise.all([c.var.session.get(), c.var.session.get()]);
    const theme = await c.var.session.getAttribute('theme');
    return c.json({ same: a === b, userId: await c.var.session.userId(), theme });
  });
  app.post('/login/:user', async (c) => {
    const s = await c.var.session.login(c.req.param('user'), { theme: 'light' });
    return c.json({ id: s.id });
  });
  app.post('/rotate', async (c) => {
    const s = await c.var.session.get();
    s?.set('theme', 'dark'); // unsaved when rotate() runs: must survive it
    const rotated = await c.var.session.rotate();
    return c.json(rotated && { id: rotated.id });
  });
  app.post('/logout', async (c) => c.json({ deleted: await c.var.session.destroy() }));
  app.post('/set3', async (c) => {
    const s = await c.var.session.get();
    if (s === null) return c.text('no session', 401);
    manager.db?.reset(); // count only what happens after the load
    s.set('a', 1).set('b', 2).set('c', 3);
    return c.text('ok');
  });
  app.post('/throw', async (c) => {
    (await c.var.session.get())?.set('a', 99);
    throw new Error('handler failed');
  });
  app.post('/forbidden', async (c) => {
    (await c.var.session.get())?.set('a', 98);
    throw new HTTPException(403, { message: 'no' });
  });
  return app;
}

function send(
  app: Hono<SessionEnv<Attrs>>,
  jar: CookieJar | undefined,
  path: string,
  method = 'GET',
  ctx?: Parameters<Hono['request']>[3],
) {
  const headers: Record<string, string> = {};
  const cookie = jar?.header();
  if (cookie) headers.cookie = cookie;
  return app.request(path, { method, headers }, undefined, ctx);
}

const CLEARED = new RegExp(`^${COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax$`);

describe.each(DRIVERS)('session middleware (%s)', (driver) => {
  const fx = useStore(driver, 'hono');

  function setup(config: Parameters<StoreFixture['manager']>[0] = {}, options: Partial<SessionMiddlewareOptions<Attrs>> = {}) {
    const clock = fakeClock();
    const m = fx.manager<Attrs>({ clock, ...config });
    return { m, clock, app: buildApp(m, options), jar: new CookieJar() };
  }

  async function row(
    m: SessionManager<Attrs>,
    id: string,
  ): Promise<{ version: number; attributes: Record<string, { v: unknown }> } | undefined> {
    const r = await fx.t.admin.query(`SELECT version, attributes FROM ${m.names.sessions} WHERE id = $1`, [id]);
    return r.rows[0];
  }

  async function login(app: Hono<SessionEnv<Attrs>>, jar: CookieJar, user = 'alice'): Promise<string> {
    const res = await send(app, jar, `/login/${user}`, 'POST');
    expect(res.status).toBe(200);
    jar.take(res);
    return ((await res.json()) as { id: string }).id;
  }

  it('login sets a __Host- cookie: Max-Age until expiry, Path=/, HttpOnly, Secure, SameSite=Lax', async () => {
    const { app, jar } = setup();
    const res = await send(app, jar, '/login/alice', 'POST');
    const cookies = res.headers.getSetCookie();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatch(new RegExp(`^${COOKIE}=${TOKEN}; Max-Age=${(30 * DAY) / 1000}; Path=/; HttpOnly; Secure; SameSite=Lax$`));
    jar.take(res);
    const me = await (await send(app, jar, '/me')).json();
    expect(me).toMatchObject({ userId: 'alice', attributes: { theme: 'light' } });
  });

  it('a route that never reads the session runs no statement and sends no cookie', async () => {
    const { m, app, jar } = setup({ cacheSize: 0 });
    await login(app, jar);
    m.db.reset();
    const res = await send(app, jar, '/plain');
    expect(await res.text()).toBe('plain');
    expect(m.db.count).toBe(0);
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it('loads the session once per request however often it is read', async () => {
    const { m, app, jar } = setup({ cacheSize: 0 });
    await login(app, jar);
    m.db.reset();
    const res = await send(app, jar, '/me-twice');
    expect(await res.json()).toEqual({ same: true, userId: 'alice', theme: 'light' });
    expect(m.db.count).toBe(1);
  });

  it('reading and changing a session sends no Set-Cookie', async () => {
    const { m, app, jar } = setup();
    const id = await login(app, jar);
    for (const path of ['/me', '/me-twice']) {
      const res = await send(app, jar, path);
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    const res = await send(app, jar, '/set3', 'POST');
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()).toEqual([]);
    expect((await row(m, id))?.version).toBe(2);
  });

  it('saves the changes of a request once, after the handler: three set() calls, one statement', async () => {
    const { m, app, jar } = setup({ cacheSize: 0 });
    const id = await login(app, jar);
    const res = await send(app, jar, '/set3', 'POST');
    expect(res.status).toBe(200);
    expect(m.db.count).toBe(1);
    const r = await row(m, id);
    expect(r?.version).toBe(2);
    expect(r?.attributes).toMatchObject({ a: { v: 1 }, b: { v: 2 }, c: { v: 3 }, theme: { v: 'light' } });
  });

  it('a handler that throws saves nothing', async () => {
    const { m, app, jar } = setup();
    const id = await login(app, jar);
    const res = await send(app, jar, '/throw', 'POST');
    expect(res.status).toBe(500);
    expect(res.headers.getSetCookie()).toEqual([]);
    const r = await row(m, id);
    expect(r?.version).toBe(1);
    expect(r?.attributes).not.toHaveProperty('a');
  });

  it('a handler that throws an HTTPException saves nothing either', async () => {
    const { m, app, jar } = setup();
    const id = await login(app, jar);
    const res = await send(app, jar, '/forbidden', 'POST');
    expect(res.status).toBe(403);
    expect((await row(m, id))?.attributes).not.toHaveProperty('a');
  });

  it('login with a session cookie present deletes the old session and issues a new token (fixation)', async () => {
    const { m, app, jar } = setup();
    const oldId = await login(app, jar, 'alice');
    const oldToken = jar.get()!;
    const res = await send(app, jar, '/login/alice', 'POST');
    jar.take(res);
    const newToken = jar.get()!;
    const newId = ((await res.json()) as { id: string }).id;
    expect(newToken).toMatch(new RegExp(`^${TOKEN}$`));
    expect(newToken).not.toBe(oldToken);
    expect(newId).not.toBe(oldId);
    expect(await row(m, oldId)).toBeUndefined();
    expect(await (await send(app, jar, '/me')).json()).toMatchObject({ id: newId, userId: 'alice' });
    // The planted/old token is dead, and the browser that still sends it is told to drop it.
    const stale = await send(app, new CookieJar().set(COOKIE, oldToken), '/me');
    expect(await stale.json()).toBeNull();
    expect(stale.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
  });

  it('login with an unknown (planted) token in the cookie still issues a fresh token', async () => {
    const { app } = setup();
    const planted = generateToken();
    const jar = new CookieJar().set(COOKIE, planted);
    await login(app, jar, 'bob');
    expect(jar.get()).not.toBe(planted);
    expect(await (await send(app, jar, '/me')).json()).toMatchObject({ userId: 'bob' });
  });

  it('rotate issues a new token, keeps data and unsaved changes, and the old cookie stops working', async () => {
    const { m, app, jar } = setup();
    const id = await login(app, jar);
    const oldToken = jar.get()!;
    const res = await send(app, jar, '/rotate', 'POST');
    expect(await res.json()).toEqual({ id });
    const cookies = res.headers.getSetCookie();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatch(new RegExp(`^${COOKIE}=${TOKEN}; Max-Age=\\d+; Path=/; HttpOnly; Secure; SameSite=Lax$`));
    jar.take(res);
    expect(jar.get()).not.toBe(oldToken);
    // The change made before rotate() in the same request was saved after the handler.
    expect((await row(m, id))?.attributes).toMatchObject({ theme: { v: 'dark' } });

    const old = await send(app, new CookieJar().set(COOKIE, oldToken), '/me');
    expect(await old.json()).toBeNull();
    expect(old.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    // Also in another isolate (a manager with its own, empty cache).
    const other = buildApp(fx.manager<Attrs>());
    expect(await (await send(other, new CookieJar().set(COOKIE, oldToken), '/me')).json()).toBeNull();
    expect(await (await send(other, jar, '/me')).json()).toMatchObject({ id, attributes: { theme: 'dark' } });
  });

  it('rotate without a session returns null and sets no cookie', async () => {
    const { app } = setup();
    const res = await send(app, undefined, '/rotate', 'POST');
    expect(await res.json()).toBeNull();
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it('destroy deletes the session and clears the cookie', async () => {
    const { m, app, jar } = setup();
    const id = await login(app, jar);
    const res = await send(app, jar, '/logout', 'POST');
    expect(await res.json()).toEqual({ deleted: true });
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
    expect(await row(m, id)).toBeUndefined();
    jar.take(res);
    expect(jar.get()).toBeUndefined();
    expect(await (await send(app, jar, '/me')).json()).toBeNull();
  });

  it('destroy without a cookie deletes nothing and sends no cookie', async () => {
    const { m, app } = setup();
    m.db.reset();
    const res = await send(app, undefined, '/logout', 'POST');
    expect(await res.json()).toEqual({ deleted: false });
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(m.db.count).toBe(0);
  });

  it('malformed and forged cookies: null session, no query, no crash, cookie cleared', async () => {
    const { m, app } = setup();
    const token = generateToken();
    const forged = [
      '',
      'not-a-token',
      `${token.slice(0, 42)}B`, // 43 base64url characters, but non-zero padding bits: never issued
      `${token}A`,
      token.slice(0, 42),
      token.replace(/^./, '+'),
      `${token.slice(0, 42)}%3D`,
      '%27%20OR%20%271%27%3D%271',
      '%E2%98%83'.repeat(15),
      'A'.repeat(4096),
    ];
    for (const value of forged) {
      m.db.reset();
      const res = await send(app, new CookieJar().set(COOKIE, value), '/me');
      expect(res.status, value).toBe(200);
      expect(await res.json(), value).toBeNull();
      expect(m.db.count, value).toBe(0);
      expect(res.headers.getSetCookie(), value).toEqual([expect.stringMatching(CLEARED)]);
    }
  });

  it('a cookie naming an unknown session: null for the handler, one query, cookie cleared', async () => {
    const { m, app } = setup();
    m.db.reset();
    const res = await send(app, new CookieJar().set(COOKIE, generateToken()), '/me');
    expect(await res.json()).toBeNull();
    expect(m.db.count).toBe(1);
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
  });

  it('a cookie naming an expired session: null for the handler, cookie cleared', async () => {
    const { app, jar, clock } = setup({ sessionExpiration: DAY });
    await login(app, jar);
    clock.advance(DAY + 1);
    const res = await send(app, jar, '/me');
    expect(await res.json()).toBeNull();
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
  });

  it('a cookie of another name is ignored', async () => {
    const { app, jar } = setup();
    await login(app, jar);
    const res = await send(app, new CookieJar().set('session', jar.get()!), '/me');
    expect(await res.json()).toBeNull();
    expect(res.headers.getSetCookie()).toEqual([]);
  });

  it('a session deleted while the handler ran: the save fails with SESSION_NOT_FOUND and the cookie is cleared', async () => {
    const clock = fakeClock();
    const m = fx.manager<Attrs>({ clock });
    const app = new Hono<SessionEnv<Attrs>>();
    let code: string | undefined;
    app.onError((e, c) => {
      code = (e as { code?: string }).code;
      return c.text('gone', 409);
    });
    app.use(sessionMiddleware({ manager: m }));
    app.post('/login', async (c) => c.json({ id: (await c.var.session.login('carol')).id }));
    app.post('/change', async (c) => {
      const s = (await c.var.session.get())!;
      await m.deleteAllUserSessions('carol'); // "sign out everywhere" from another device
      s.set('a', 1);
      return c.text('ok');
    });
    const jar = new CookieJar();
    jar.take(await app.request('/login', { method: 'POST' }));
    const res = await app.request('/change', { method: 'POST', headers: { cookie: jar.header() } });
    expect(res.status).toBe(409);
    expect(code).toBe('SESSION_NOT_FOUND');
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)]);
  });

  it('save() lets the handler compare-and-set and see the conflict', async () => {
    const { m, app, jar } = setup();
    app.post('/cas', async (c) => {
      const s = (await c.var.session.get())!;
      const other = (await m.getSession(jar.get()!))!;
      other.set('a', 1);
      await m.updateSession(other); // a concurrent writer
      s.set('a', 2);
      try {
        await c.var.session.save({ checkVersion: true });
        return c.text('saved');
      } catch (e) {
        if (e instanceof VersionConflictError) return c.text('conflict', 409);
        throw e;
      }
    });
    const id = await login(app, jar);
    const res = await send(app, jar, '/cas', 'POST');
    expect(res.status).toBe(409);
    // The handler saw the conflict and answered: its change is not written after the handler anyway.
    expect((await row(m, id))?.attributes).toMatchObject({ a: { v: 1 } });
  });

  it("touch 'manager' (default) records the access in the manager, without a statement", async () => {
    const { m, app, jar } = setup({ cacheSize: 0 });
    await login(app, jar);
    m.takePendingTouches();
    m.db.reset();
    await send(app, jar, '/me');
    expect(m.pendingTouchCount).toBe(1);
    expect(m.db.count).toBe(1); // the load; no write on the request path
    await send(app, jar, '/plain');
    expect(m.pendingTouchCount).toBe(1);
  });

  it("touch 'none' records nothing", async () => {
    const { m, app, jar } = setup({}, { touch: 'none' });
    await login(app, jar);
    m.takePendingTouches();
    await send(app, jar, '/me');
    expect(m.pendingTouchCount).toBe(0);
  });

  it('a touch callback runs after the response through executionCtx.waitUntil', async () => {
    const touched: string[] = [];
    const { m, app, jar } = setup({}, { touch: (s) => void touched.push(s.userId) });
    await login(app, jar);
    m.takePendingTouches();
    expect(touched).toEqual([]); // creating is not a touch
    const waited: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void waited.push(p), passThroughOnException() {}, props: {} };
    await send(app, jar, '/plain', 'GET', ctx);
    expect(waited).toHaveLength(0); // nothing read, nothing to do
    await send(app, jar, '/me', 'GET', ctx);
    expect(waited).toHaveLength(1);
    await Promise.all(waited);
    expect(touched).toEqual(['alice']);
    expect(m.pendingTouchCount).toBe(0);
  });

  it('a touch callback also runs without an execution context (Node); its errors go to onBackgroundError', async () => {
    let report!: (e: unknown) => void;
    const reported = new Promise<unknown>((resolve) => {
      report = resolve;
    });
    const touch = async () => {
      throw new Error('sync worker down');
    };
    const { app, jar } = setup({}, { touch, onBackgroundError: (e) => report(e) });
    await login(app, jar);
    const res = await send(app, jar, '/me');
    expect(res.status).toBe(200);
    expect(((await reported) as Error).message).toBe('sync worker down');
  });

  it("plain-http development cookie: secure: false, prefix: 'none'", async () => {
    const { app, jar } = setup({}, { cookie: { secure: false, prefix: 'none', maxAge: 'browser-session' } });
    const res = await send(app, jar, '/login/dev', 'POST');
    expect(res.headers.getSetCookie()).toEqual([expect.stringMatching(new RegExp(`^session=${TOKEN}; Path=/; HttpOnly; SameSite=Lax$`))]);
    jar.take(res);
    expect(await (await send(app, jar, '/me')).json()).toMatchObject({ userId: 'dev' });
  });

  it('Max-Age is capped at 400 days', async () => {
    const { app } = setup({ sessionExpiration: 1000 * DAY });
    const res = await send(app, undefined, '/login/long', 'POST');
    expect(res.headers.getSetCookie()[0]).toContain(`Max-Age=${400 * 24 * 3600};`);
  });
});

describe('sessionMiddleware options', () => {
  const manager = new SessionManager<Attrs>({ execute: () => Promise.reject(new Error('no database in this test')) });

  it.each([
    ['manager', { manager: undefined }],
    ['manager', { manager: {} }],
    ['extra', { extra: 1 }],
    ['cookie', { cookie: 'session' }],
    ['cookie.secure', { cookie: { secure: false } }],
    ['cookie.secure', { cookie: { prefix: '__Secure-', secure: false } }],
    ['cookie.domain', { cookie: { domain: 'example.com' } }],
    ['cookie.domain', { cookie: { domain: 'a.com; Path=/x', prefix: '__Secure-' } }],
    ['cookie.path', { cookie: { path: '/app' } }],
    ['cookie.path', { cookie: { prefix: 'none', path: 'app' } }],
    ['cookie.prefix', { cookie: { prefix: 'host' } }],
    ['cookie.name', { cookie: { name: '__Host-session' } }],
    ['cookie.name', { cookie: { name: 'a b' } }],
    ['cookie.sameSite', { cookie: { sameSite: 'None', secure: false, prefix: 'none' } }],
    ['cookie.sameSite', { cookie: { sameSite: 'sometimes' } }],
    ['cookie.maxAge', { cookie: { maxAge: 3600 } }],
    ['cookie.httpOnly', { cookie: { httpOnly: 'yes' } }],
    ['cookie.expires', { cookie: { expires: 1 } }],
    ['touch', { touch: 'always' }],
    ['onBackgroundError', { onBackgroundError: 'log' }],
  ])('throws a ConfigError naming %s for %j', (option, extra) => {
    let error: unknown;
    try {
      sessionMiddleware({ manager, ...extra } as unknown as SessionMiddlewareOptions<Attrs>);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe(option);
  });

  it('accepts the documented alternatives', () => {
    expect(() =>
      sessionMiddleware({ manager, cookie: { prefix: '__Secure-', domain: 'example.com', path: '/app', sameSite: 'Strict' } }),
    ).not.toThrow();
    expect(() => sessionMiddleware({ manager, cookie: { prefix: 'none', secure: false, name: 'sid' } })).not.toThrow();
    expect(() => sessionMiddleware({ manager, touch: () => undefined })).not.toThrow();
  });

  it('types c.var.session by the attribute type', () => {
    const app = new Hono<SessionEnv<Attrs>>();
    app.use(sessionMiddleware({ manager }));
    app.get('/', async (c) => {
      expectTypeOf(c.var.session.get()).resolves.toEqualTypeOf<Session<Attrs> | null>();
      expectTypeOf(c.var.session.getAttribute('theme')).resolves.toEqualTypeOf<'light' | 'dark' | undefined>();
      const s = await c.var.session.get();
      expectTypeOf(s?.get('cart')).toEqualTypeOf<string[] | undefined>();
      // @ts-expect-error: not an attribute of Attrs
      s?.get('nope');
      return c.text('ok');
    });
    expect(app).toBeDefined();
  });
});
