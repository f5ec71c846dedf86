// Cross-origin unsafe requests are refused by the session middleware (ARCHITECTURE.md, promise 16).
// The attack as reported: with every default, a POST carrying `Origin: https://evil.example` and
// `Sec-Fetch-Site: cross-site` ran its handler as the signed-in user, and a cross-site POST to a login route
// set a session cookie (login CSRF). Both drivers, through app.request(), against the real database.
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { methodOverride } from 'hono/method-override';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, type SessionMiddlewareOptions, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS } from '../support/db.ts';
import { useStore } from '../support/store-suite.ts';

type Attrs = { a: number };

const APP = 'https://app.example';
const EVIL = 'https://evil.example';
/** Same site as APP (a Lax cookie goes along with its POSTs), but another origin. */
const SIBLING = 'https://blog.app.example';
const UNSAFE = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** The check ignores the body's type: a form, JSON, text or nothing are all refused alike. */
const CONTENT_TYPES = [undefined, 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json', 'text/plain'];

/** Header sets a browser sends for a request another origin made (or that must be treated so). */
const CROSS_ORIGIN: Record<string, string>[] = [
  { origin: EVIL, 'sec-fetch-site': 'cross-site' }, // the reported attack
  { origin: EVIL },
  { origin: SIBLING, 'sec-fetch-site': 'same-site' }, // SameSite=Lax does not stop this one
  { origin: 'http://app.example', 'sec-fetch-site': 'same-site' }, // plain-http page of the same host
  { origin: 'null' }, // sandboxed frame, data: URL, cross-origin redirect
  { origin: 'null', 'sec-fetch-site': 'cross-site' },
  { 'sec-fetch-site': 'cross-site' }, // no Origin: Sec-Fetch-Site decides
  { 'sec-fetch-site': 'same-site' },
  { 'sec-fetch-site': 'none' },
  { 'sec-fetch-site': 'bogus' },
  { origin: APP, 'sec-fetch-site': 'cross-site' }, // headers that disagree: refused
  { origin: APP, 'sec-fetch-site': 'same-site' },
];

/** Header sets of requests the app's own pages (or a non-browser client) send. */
const SAME_ORIGIN: Record<string, string>[] = [
  { origin: APP },
  { origin: APP, 'sec-fetch-site': 'same-origin' },
  { 'sec-fetch-site': 'same-origin' },
  {}, // neither header: curl, a server, a webhook; a browser always sends Origin on cross-origin unsafe requests
];

describe.each(DRIVERS)('cross-origin requests (%s)', (driver) => {
  const fx = useStore(driver, 'csrf');

  function setup(options: Partial<SessionMiddlewareOptions<Attrs>> = {}) {
    // The file's tests share user ids in one schema: no maxSessions eviction between them.
    const m = fx.manager<Attrs>({ cacheSize: 0, maxSessions: 1000 });
    const app = new Hono<SessionEnv<Attrs>>();
    const ran: string[] = [];
    app.use(sessionMiddleware<Attrs>({ manager: m, ...options }));
    app.post('/login/:user', async (c) => {
      ran.push('login');
      return c.json({ id: (await c.var.session.login(c.req.param('user'))).id });
    });
    app.on(['POST', 'PUT', 'PATCH', 'DELETE'], '/set', async (c) => {
      ran.push(`set ${c.req.method}`);
      const s = await c.var.session.get();
      if (s === null) return c.text('no session', 401);
      s.set('a', (s.get('a') ?? 0) + 1);
      return c.text('ok');
    });
    app.post('/logout', async (c) => {
      ran.push('logout');
      return c.json({ deleted: await c.var.session.destroy() });
    });
    app.on(['GET', 'HEAD', 'OPTIONS'], '/me', async (c) => {
      ran.push(`me ${c.req.method}`);
      const s = await c.var.session.get();
      return c.json(s && { userId: s.userId });
    });
    return { m, app, ran };
  }

  function send(app: Hono<SessionEnv<Attrs>>, method: string, path: string, headers: Record<string, string> = {}, url = APP) {
    return Promise.resolve(app.request(`${url}${path}`, { method, headers }));
  }

  async function signIn(app: Hono<SessionEnv<Attrs>>, user = 'alice'): Promise<{ jar: CookieJar; id: string }> {
    const res = await send(app, 'POST', `/login/${user}`);
    expect(res.status).toBe(200);
    return { jar: new CookieJar().take(res), id: ((await res.json()) as { id: string }).id };
  }

  async function row(m: SessionManager<Attrs>, id: string) {
    const r = await fx.t.admin.query(`SELECT version, attributes, last_accessed FROM ${m.names.sessions} WHERE id = $1`, [id]);
    return r.rows[0] as { version: number; attributes: Record<string, unknown>; last_accessed: Date } | undefined;
  }

  async function sessionsOf(m: SessionManager<Attrs>, userId: string): Promise<number> {
    const r = await fx.t.admin.query(`SELECT count(*)::int AS n FROM ${m.names.sessions} WHERE user_id = $1`, [userId]);
    return r.rows[0].n;
  }

  it('the reported attack: a cross-site POST with a valid cookie gets 403; the handler does not run, nothing is read or written', async () => {
    const { m, app, ran } = setup();
    const { jar, id } = await signIn(app);
    const before = await row(m, id);
    ran.length = 0;
    m.db.reset();
    m.takePendingTouches();
    const res = await send(app, 'POST', '/set', { cookie: jar.header(), origin: EVIL, 'sec-fetch-site': 'cross-site' });
    expect(res.status).toBe(403);
    expect(await res.text()).toBe('Forbidden');
    expect(ran).toEqual([]);
    expect(m.db.count).toBe(0); // not even the session's SELECT
    expect(m.pendingTouchCount).toBe(0);
    expect(res.headers.getSetCookie()).toEqual([]);
    expect(await row(m, id)).toEqual(before);
    // The same request from the app's own page goes through: the cookie was fine, the origin was not.
    const own = await send(app, 'POST', '/set', { cookie: jar.header(), origin: APP, 'sec-fetch-site': 'same-origin' });
    expect(own.status).toBe(200);
    expect((await row(m, id))?.version).toBe(before!.version + 1);
  });

  it('a cross-site login POST gets 403: no Set-Cookie and no session row (login CSRF)', async () => {
    const { m, app, ran } = setup();
    for (const headers of CROSS_ORIGIN) {
      const res = await send(app, 'POST', '/login/victim', headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.headers.getSetCookie(), JSON.stringify(headers)).toEqual([]);
    }
    expect(ran).toEqual([]);
    expect(await sessionsOf(m, 'victim')).toBe(0);
    // A planted cookie along with it changes nothing either: the request is refused before it is read.
    const planted = await m.createSession('attacker');
    m.db.reset();
    const res = await send(app, 'POST', '/login/victim', { cookie: `__Host-session=${planted.token}`, origin: SIBLING });
    expect(res.status).toBe(403);
    expect(m.db.count).toBe(0);
    expect(await m.getSession(planted.token, { forceRefresh: true })).not.toBeNull();
    expect(await sessionsOf(m, 'victim')).toBe(0);
  });

  it('every unsafe method and body type from another origin is refused; the session and its row are unchanged', async () => {
    const { m, app, ran } = setup();
    const { jar, id } = await signIn(app);
    const before = await row(m, id);
    ran.length = 0;
    m.db.reset();
    for (const method of UNSAFE) {
      for (const type of CONTENT_TYPES) {
        for (const headers of CROSS_ORIGIN) {
          const h: Record<string, string> = { ...headers, cookie: jar.header() };
          if (type !== undefined) h['content-type'] = type;
          const res = await send(app, method, '/set', h);
          expect(res.status, `${method} ${type} ${JSON.stringify(headers)}`).toBe(403);
          expect(res.headers.getSetCookie()).toEqual([]);
        }
      }
    }
    // A forged sign-out is refused too: the session survives.
    expect((await send(app, 'POST', '/logout', { cookie: jar.header(), origin: EVIL })).status).toBe(403);
    expect(ran).toEqual([]);
    expect(m.db.count).toBe(0);
    expect(await row(m, id)).toEqual(before);
  });

  it('same-origin requests and clients that send neither header pass, on every unsafe method', async () => {
    const { m, app } = setup();
    const { jar, id } = await signIn(app);
    let version = (await row(m, id))!.version;
    for (const method of UNSAFE) {
      for (const headers of SAME_ORIGIN) {
        const res = await send(app, method, '/set', { ...headers, cookie: jar.header(), 'content-type': 'application/json' });
        expect(res.status, `${method} ${JSON.stringify(headers)}`).toBe(200);
        version++;
      }
    }
    expect((await row(m, id))?.version).toBe(version);
    for (const headers of SAME_ORIGIN) {
      const res = await send(app, 'POST', '/login/bob', headers);
      expect(res.status).toBe(200);
      expect(res.headers.getSetCookie()).toHaveLength(1);
    }
  });

  it('GET and HEAD are never refused, whatever their origin', async () => {
    const { app, ran } = setup();
    const { jar } = await signIn(app);
    ran.length = 0;
    for (const method of ['GET', 'HEAD']) {
      for (const headers of CROSS_ORIGIN) {
        const res = await send(app, method, '/me', { ...headers, cookie: jar.header() });
        expect(res.status, `${method} ${JSON.stringify(headers)}`).toBe(200);
        if (method !== 'HEAD') expect(await res.json()).toEqual({ userId: 'alice' });
      }
    }
    expect(ran).toHaveLength(2 * CROSS_ORIGIN.length);
  });

  it('CORS preflights (OPTIONS with Access-Control-Request-Method, no cookie) pass from any origin; any other OPTIONS is checked', async () => {
    const { app, ran } = setup();
    const { jar } = await signIn(app);
    ran.length = 0;
    const preflight = { 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' };
    for (const headers of CROSS_ORIGIN) {
      const res = await send(app, 'OPTIONS', '/me', { ...headers, ...preflight });
      expect(res.status, JSON.stringify(headers)).toBe(200);
      expect(await res.json()).toBeNull();
    }
    expect(ran).toHaveLength(CROSS_ORIGIN.length);
    ran.length = 0;
    // Browsers never send cookies with a preflight: an OPTIONS carrying the session cookie, or one that is
    // not a preflight, is a request a page made (or a method override produced) and is checked.
    for (const headers of CROSS_ORIGIN) {
      for (const extra of [{ cookie: jar.header(), ...preflight }, { cookie: jar.header() }, {}] as Record<string, string>[]) {
        const res = await send(app, 'OPTIONS', '/me', { ...headers, ...extra });
        expect(res.status, `${JSON.stringify(headers)} ${JSON.stringify(extra)}`).toBe(403);
      }
    }
    expect(ran).toEqual([]);
    for (const headers of SAME_ORIGIN) {
      const res = await send(app, 'OPTIONS', '/me', { ...headers, cookie: jar.header() });
      expect(res.status, JSON.stringify(headers)).toBe(200);
      expect(await res.json()).toEqual({ userId: 'alice' });
    }
  });

  it('hono/cors behind the middleware still answers real preflights; the credentialed request that follows is checked', async () => {
    const m = fx.manager<Attrs>({ cacheSize: 0, maxSessions: 1000 });
    const app = new Hono<SessionEnv<Attrs>>();
    app.use(sessionMiddleware<Attrs>({ manager: m }));
    app.use(cors({ origin: SIBLING, credentials: true }));
    app.post('/set', (c) => c.text('ok'));
    const preflight = await send(app, 'OPTIONS', '/set', {
      origin: SIBLING,
      'sec-fetch-site': 'same-site',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(SIBLING);
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    // CORS allowing it does not make the origin trusted by the session middleware.
    const actual = await send(app, 'POST', '/set', { origin: SIBLING, 'sec-fetch-site': 'same-site', cookie: '__Host-session=x' });
    expect(actual.status).toBe(403);
  });

  it('the reported attack: hono/method-override in front turns a cross-site form POST into OPTIONS (or any method); still refused', async () => {
    const m = fx.manager<Attrs>({ cacheSize: 0, maxSessions: 1000 });
    const app = new Hono<SessionEnv<Attrs>>();
    const ran: string[] = [];
    app.use(methodOverride({ app }));
    app.use(sessionMiddleware<Attrs>({ manager: m }));
    app.all('/login/:user', async (c) => {
      ran.push(`login ${c.req.method}`);
      return c.json({ id: (await c.var.session.login(c.req.param('user'))).id });
    });
    app.all('/set', async (c) => {
      ran.push(`set ${c.req.method}`);
      const s = await c.var.session.get();
      if (s === null) return c.text('no session', 401);
      s.set('a', (s.get('a') ?? 0) + 1);
      return c.text('ok');
    });
    const form = (path: string, method: string, headers: Record<string, string>) =>
      Promise.resolve(
        app.request(`${APP}${path}`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ _method: method, x: '1' }).toString(),
        }),
      );
    const signedIn = await form('/login/alice', 'POST', { origin: APP });
    expect(signedIn.status).toBe(200);
    const jar = new CookieJar().take(signedIn);
    const { id } = (await signedIn.json()) as { id: string };
    const before = await row(m, id);
    ran.length = 0;
    for (const method of ['OPTIONS', 'options', 'PUT', 'DELETE', 'PATCH', 'PROPFIND']) {
      for (const headers of CROSS_ORIGIN) {
        const res = await form('/set', method, { ...headers, cookie: jar.header() });
        expect(res.status, `${method} ${JSON.stringify(headers)}`).toBe(403);
        expect(res.headers.getSetCookie()).toEqual([]);
      }
    }
    // Login CSRF the same way: no cookie, turned into OPTIONS.
    const forgedLogin = await form('/login/victim', 'OPTIONS', { origin: EVIL, 'sec-fetch-site': 'cross-site' });
    expect(forgedLogin.status).toBe(403);
    expect(forgedLogin.headers.getSetCookie()).toEqual([]);
    expect(ran).toEqual([]);
    expect(await row(m, id)).toEqual(before);
    expect(await sessionsOf(m, 'victim')).toBe(0);
    // The app's own forms still use the override.
    const own = await form('/set', 'OPTIONS', { origin: APP, 'sec-fetch-site': 'same-origin', cookie: jar.header() });
    expect(own.status).toBe(200);
    expect(ran).toEqual(['set OPTIONS']);
    expect((await row(m, id))?.version).toBe(before!.version + 1);
  });

  it('trustedOrigins: a listed origin passes (any Sec-Fetch-Site), unlisted ones and "null" are still refused', async () => {
    for (const trustedOrigins of [SIBLING, [EVIL, SIBLING]]) {
      const { m, app } = setup({ csrf: { trustedOrigins } });
      const { jar, id } = await signIn(app);
      const res = await send(app, 'POST', '/set', { cookie: jar.header(), origin: SIBLING, 'sec-fetch-site': 'same-site' });
      expect(res.status).toBe(200);
      expect((await row(m, id))?.version).toBe(2);
      const other = await send(app, 'POST', '/set', {
        cookie: jar.header(),
        origin: 'https://other.example',
        'sec-fetch-site': 'cross-site',
      });
      expect(other.status).toBe(403);
      expect((await send(app, 'POST', '/set', { cookie: jar.header(), origin: 'null' })).status).toBe(403);
      // Without an Origin a trusted origin cannot be told apart: Sec-Fetch-Site alone decides.
      expect((await send(app, 'POST', '/set', { cookie: jar.header(), 'sec-fetch-site': 'same-site' })).status).toBe(403);
      expect((await row(m, id))?.version).toBe(2);
    }
  });

  it('trustedOrigins as a function: asked only about foreign, non-null origins, with the context; may be async', async () => {
    const asked: string[] = [];
    const { m, app } = setup({
      csrf: {
        trustedOrigins: async (origin, c) => {
          asked.push(`${origin} ${c.req.path}`);
          return origin === SIBLING && c.req.path === '/set';
        },
      },
    });
    const { jar, id } = await signIn(app);
    expect((await send(app, 'POST', '/set', { cookie: jar.header(), origin: SIBLING, 'sec-fetch-site': 'same-site' })).status).toBe(200);
    expect((await send(app, 'POST', '/logout', { cookie: jar.header(), origin: SIBLING })).status).toBe(403);
    expect((await send(app, 'POST', '/set', { cookie: jar.header(), origin: EVIL })).status).toBe(403);
    expect((await send(app, 'POST', '/set', { cookie: jar.header(), origin: 'null' })).status).toBe(403);
    expect((await send(app, 'POST', '/set', { cookie: jar.header(), origin: APP })).status).toBe(200);
    expect(asked).toEqual([`${SIBLING} /set`, `${SIBLING} /logout`, `${EVIL} /set`]);
    expect((await row(m, id))?.version).toBe(3);
  });

  it('behind a proxy (the request URL is not the public origin) the own origin needs trustedOrigins', async () => {
    const internal = 'http://10.0.0.7:8080';
    const headers = { origin: APP, 'sec-fetch-site': 'same-origin' };
    expect((await send(setup().app, 'POST', '/login/alice', headers, internal)).status).toBe(403);
    const res = await send(setup({ csrf: { trustedOrigins: APP } }).app, 'POST', '/login/alice', headers, internal);
    expect(res.status).toBe(200);
  });

  it('csrf: false turns the check off (the reported attack then goes through)', async () => {
    const { m, app, ran } = setup({ csrf: false });
    const { jar, id } = await signIn(app);
    const res = await send(app, 'POST', '/set', { cookie: jar.header(), origin: EVIL, 'sec-fetch-site': 'cross-site' });
    expect(res.status).toBe(200);
    expect(ran).toContain('set POST');
    expect((await row(m, id))?.version).toBe(2);
    expect((await send(app, 'POST', '/login/victim', { origin: EVIL })).headers.getSetCookie()).toHaveLength(1);
  });

  it('csrf: true and {} are the default', async () => {
    for (const csrf of [true, {}] as const) {
      const { app } = setup({ csrf });
      expect((await send(app, 'POST', '/login/x', { origin: EVIL })).status).toBe(403);
      expect((await send(app, 'POST', '/login/x', { origin: APP })).status).toBe(200);
    }
  });

  it('the refusal is an HTTPException(403) that app.onError can shape, and c.var.session is not set', async () => {
    const { app } = setup();
    const seen: unknown[] = [];
    app.onError((e, c) => {
      seen.push(e instanceof HTTPException ? e.status : e);
      seen.push(c.get('session'));
      return c.json({ error: 'cross-origin' }, 403);
    });
    const res = await send(app, 'POST', '/set', { origin: EVIL });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'cross-origin' });
    expect(seen).toEqual([403, undefined]);
  });
});

describe('csrf options', () => {
  const manager = new SessionManager<Attrs>({ execute: () => Promise.reject(new Error('no database in this test')) });

  it.each([
    ['csrf', { csrf: 'off' }],
    ['csrf', { csrf: 0 }],
    ['csrf', { csrf: null }],
    ['csrf', { csrf: ['https://a.example'] }],
    ['csrf.origin', { csrf: { origin: 'https://a.example' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'a.example' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'https://a.example/' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'https://a.example/app' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'https://A.example' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'https://a.example:443' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'null' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: '*' } }],
    // Patterns: hono/csrf compares origins literally too; accepted, this would never match anything.
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'https://*.example' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: ['https://a.example', 'https://*.a.example'] } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 'https://a.example:*' } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: ['https://a.example', 5] } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: 42 } }],
    ['csrf.trustedOrigins', { csrf: { trustedOrigins: { 'https://a.example': true } } }],
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

  it('refuses a wildcard origin and points to the function form', () => {
    expect(() => sessionMiddleware({ manager, csrf: { trustedOrigins: 'https://*.example' } })).toThrow(
      /wildcards are not supported.*trustedOrigins: \(origin\) =>/,
    );
  });

  it('suggests the origin a browser would send', () => {
    expect(() => sessionMiddleware({ manager, csrf: { trustedOrigins: 'https://A.example:443/' } })).toThrow(
      /did you mean "https:\/\/a\.example"/,
    );
  });

  it('accepts the documented alternatives', () => {
    for (const csrf of [
      true,
      false,
      {},
      { trustedOrigins: [] },
      { trustedOrigins: 'https://a.example' },
      { trustedOrigins: ['https://a.example', 'http://localhost:5173', 'https://[::1]:8443'] },
      { trustedOrigins: () => false },
    ]) {
      expect(() => sessionMiddleware({ manager, csrf }), JSON.stringify(csrf)).not.toThrow();
    }
  });
});
