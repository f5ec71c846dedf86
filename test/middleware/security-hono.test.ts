// Security properties of the Hono middleware (ARCHITECTURE.md, promises 10 and 11): cookie flags, Set-Cookie
// only on create/rotate/destroy, a new token on every login (session fixation), and cookie values that
// are not tokens cost no query. Both drivers, through app.request().
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS } from '../support/db.ts';
import { fuzzParams, isCanonicalToken, wellFormedToken } from '../support/fuzz.ts';
import { useStore } from '../support/store-suite.ts';

const COOKIE = '__Host-session';

function buildApp(manager: SessionManager) {
  const app = new Hono<SessionEnv>();
  app.use(sessionMiddleware({ manager }));
  app.get('/me', async (c) => {
    const s = await c.var.session.get();
    return c.json(s && { id: s.id, userId: s.userId });
  });
  app.post('/login/:user', async (c) => {
    const s = await c.var.session.login(c.req.param('user'));
    return c.json({ id: s.id });
  });
  return app;
}

function request(app: Hono<SessionEnv>, method: string, path: string, cookie?: string): Promise<Response> {
  return Promise.resolve(app.request(`https://app.example${path}`, { method, headers: cookie === undefined ? {} : { cookie } }));
}

interface SetCookie {
  name: string;
  value: string;
  attributes: string[];
}

function setCookies(res: Response): SetCookie[] {
  return res.headers.getSetCookie().map((line) => {
    const [pair = '', ...attributes] = line.split(/;\s*/);
    const eq = pair.indexOf('=');
    return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes };
  });
}

const isClear = (c: SetCookie) => c.value === '' || c.attributes.some((a) => /^max-age=0$/i.test(a));

/** Printable ASCII a Cookie header can carry in one value (no separators, quotes or percent escapes). */
const cookieChar = fc.constantFrom(
  ...Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).filter((ch) => !';,"%\\'.includes(ch)),
);

describe.each(DRIVERS)('middleware security (%s)', (driver) => {
  const fx = useStore(driver, 'sechono');

  it('login sets the token with __Host-, HttpOnly, Secure, SameSite=Lax, Path=/ and no Domain; reads set no cookie', async () => {
    const app = buildApp(fx.manager());
    const res = await request(app, 'POST', '/login/alice');
    expect(res.status).toBe(200);
    const cookies = setCookies(res);
    expect(cookies).toHaveLength(1);
    const [c] = cookies;
    expect(c!.name).toBe(COOKIE);
    expect(isCanonicalToken(c!.value)).toBe(true);
    const attrs = c!.attributes.map((a) => a.toLowerCase());
    expect(attrs).toContain('httponly');
    expect(attrs).toContain('secure');
    expect(attrs).toContain('samesite=lax');
    expect(attrs).toContain('path=/');
    expect(attrs.some((a) => a.startsWith('domain='))).toBe(false);
    // The token is in the cookie only, never in a body.
    expect(await res.clone().text()).not.toContain(c!.value);
    for (let i = 0; i < 3; i++) {
      const me = await request(app, 'GET', '/me', `${COOKIE}=${c!.value}`);
      expect(((await me.json()) as { userId: string }).userId).toBe('alice');
      expect(me.headers.getSetCookie()).toEqual([]);
    }
  });

  it('login always issues a new token, whatever the request carried (session fixation)', async () => {
    const m = fx.manager();
    const app = buildApp(m);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('none', 'junk', 'unknown', 'attacker', 'own'),
        fc.string({ unit: cookieChar, minLength: 1, maxLength: 60 }),
        wellFormedToken,
        async (kind, junk, unknown) => {
          const victim = `victim-${n++}`;
          let planted: string | undefined;
          if (kind === 'junk') planted = junk;
          if (kind === 'unknown') planted = unknown;
          if (kind === 'attacker') planted = (await m.createSession('attacker')).token;
          if (kind === 'own') planted = (await m.createSession(victim)).token;
          const res = await request(app, 'POST', `/login/${victim}`, planted === undefined ? undefined : `${COOKIE}=${planted}`);
          expect(res.status).toBe(200);
          const issued = setCookies(res).filter((c) => c.name === COOKIE && !isClear(c));
          expect(issued).toHaveLength(1);
          const token = issued[0]!.value;
          expect(isCanonicalToken(token)).toBe(true);
          expect(token).not.toBe(planted);
          // The session the planted cookie named is gone: an attacker who planted it holds nothing.
          if (planted !== undefined) expect(await m.getSession(planted, { forceRefresh: true })).toBeNull();
          expect((await m.getSession(token, { forceRefresh: true }))?.userId).toBe(victim);
        },
      ),
      fuzzParams(60),
    );
  });

  it('cookie values that are not tokens: no query, no session, and never a token in Set-Cookie', async () => {
    const m = fx.manager();
    const app = buildApp(m);
    const value = fc
      .oneof(
        fc.string({ unit: cookieChar, maxLength: 60 }),
        fc.string({ unit: cookieChar, minLength: 40, maxLength: 46 }),
        wellFormedToken.map((t) => t.slice(0, 42)),
        wellFormedToken.map((t) => `${t}=`),
        wellFormedToken.map((t) => `${t}.sig`),
        wellFormedToken.map((t) => Buffer.from(t, 'base64url').toString('base64')),
      )
      .filter((v) => !isCanonicalToken(v));
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        m.db.reset();
        const res = await request(app, 'GET', '/me', `${COOKIE}=${v}`);
        expect(res.status).toBe(200);
        expect(await res.json()).toBeNull();
        expect(m.db.count).toBe(0);
        for (const c of setCookies(res)) {
          expect(c.name).toBe(COOKIE);
          expect(isClear(c)).toBe(true);
        }
      }),
      fuzzParams(300),
    );
  });
});
