// Step-up freshness: every session knows when its user last proved who they are (authenticatedAt: the
// sign-in, moved forward by reauthenticate, kept by rotate); requireFresh turns a stale one away before the
// handler; reauthenticationPeriod ends a session that long after it, whatever its activity. Against the
// real database, on both drivers.
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import { ConfigError, InvalidArgumentError, ReauthenticationRequiredError, SessionNotFoundError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { requireFresh, type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { countRows, rawRow, table, uid } from '../support/manager-helpers.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

async function storedAuthenticatedAt(fx: StoreFixture, id: string): Promise<number | null> {
  const r = await fx.t.admin.query<{ at: number | null }>(
    `SELECT (extract(epoch from authenticated_at) * 1000)::float8 AS at FROM ${table(fx)} WHERE id = $1::uuid`,
    [id],
  );
  return r.rows[0]?.at ?? null;
}

describe('options', () => {
  it('reauthenticationPeriod and requireFresh({ maxAge }) are validated, naming the option', () => {
    const db = { execute: async () => ({ rows: [] }) };
    for (const bad of [-1, Number.NaN, '1h', Number.POSITIVE_INFINITY]) {
      expect(() => new SessionManager(db, { reauthenticationPeriod: bad as number })).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', option: 'reauthenticationPeriod' }),
      );
      expect(() => requireFresh({ maxAge: bad as number })).toThrow(expect.objectContaining({ option: 'maxAge' }));
    }
    expect(() => requireFresh(undefined as never)).toThrow(ConfigError);
    expect(new SessionManager(db).config.reauthenticationPeriod).toBe(0);
  });
});

describe.each(DRIVERS)('step-up freshness (%s)', (driver) => {
  const fx = useStore(driver, 'step_up');

  it('authenticatedAt is the sign-in, kept by rotate and reads, moved forward by reauthenticate in one token-bound statement', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxStaleness: 0 });
    const t0 = clock();
    const { session, token } = await m.createSession(uid(), { a: 1 });
    expect(session.authenticatedAt.getTime()).toBe(t0);
    clock.advance(10 * MINUTE);
    const read = (await m.getSession(token))!;
    expect(read.authenticatedAt.getTime()).toBe(t0);
    expect((await m.listUserSessions(read.userId))[0]?.authenticatedAt.getTime()).toBe(t0);
    // rotate keeps it: a new token is not a new proof of identity.
    const rotated = (await m.rotate(read))!;
    expect(rotated.session.authenticatedAt.getTime()).toBe(t0);
    clock.advance(MINUTE);
    const t1 = clock();
    read.set('a', 2);
    m.db.reset();
    await m.reauthenticate(read);
    expect(m.db.count).toBe(1);
    expect(read.authenticatedAt.getTime()).toBe(t1);
    expect(await storedAuthenticatedAt(fx, read.id)).toBe(t1);
    // Unsaved changes stay pending; the next update stores them.
    expect(read.isModified).toBe(true);
    await m.updateSession(read);
    // Another manager (another isolate) reads the new time.
    const other = fx.manager({ clock, maxStaleness: 0 });
    expect((await other.getSession(rotated.token))!.authenticatedAt.getTime()).toBe(t1);
    expect((await other.getSession(rotated.token))!.get('a')).toBe(2);
  });

  it('a Session loaded through a token rotated away since cannot step up: SessionNotFoundError, nothing written', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session, token } = await m.createSession(uid(), {});
    const stale = (await m.getSession(token))!;
    await m.rotate(token);
    clock.advance(MINUTE);
    const before = await rawRow(fx, session.id);
    await expect(m.reauthenticate(stale)).rejects.toBeInstanceOf(SessionNotFoundError);
    expect(await rawRow(fx, session.id)).toEqual(before);
    expect(await storedAuthenticatedAt(fx, session.id)).toBe(session.createdAt.getTime());
    await expect(m.reauthenticate({} as never)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('assertFresh throws ReauthenticationRequiredError with when the user last authenticated; no I/O', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session } = await m.createSession(uid(), {});
    clock.advance(5 * MINUTE);
    m.db.reset();
    expect(() => m.assertFresh(session, 5 * MINUTE)).not.toThrow();
    clock.advance(1);
    let thrown: unknown;
    try {
      m.assertFresh(session, 5 * MINUTE);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ReauthenticationRequiredError);
    expect(thrown).toMatchObject({ code: 'REAUTHENTICATION_REQUIRED', sessionId: session.id, maxAge: 5 * MINUTE });
    expect((thrown as ReauthenticationRequiredError).authenticatedAt?.getTime()).toBe(session.createdAt.getTime());
    expect(() => m.assertFresh(session, -1)).toThrow(InvalidArgumentError);
    expect(m.db.count).toBe(0);
  });

  it('reauthenticationPeriod ends a session that long after its sign-in, however active: not served, rotated, updated or revived', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, reauthenticationPeriod: 12 * HOUR, inactivityDuration: 0, maxStaleness: 2 * HOUR });
    const user = uid();
    const { session, token } = await m.createSession(user, {});
    const kept = await m.createSession(user, {});
    clock.advance(11 * HOUR);
    expect(await m.getSession(token)).not.toBeNull();
    await m.reauthenticate((await m.getSession(kept.token))!);
    clock.advance(HOUR - 1);
    // A cache hit before the period: served without a statement.
    m.db.reset();
    expect(await m.getSession(token)).not.toBeNull();
    expect(m.db.count).toBe(0);
    clock.advance(1);
    // At the period: the hit itself refuses it (still no statement), and so does a fresh read.
    m.db.reset();
    expect(await m.getSession(token)).toBeNull();
    expect(m.db.count).toBe(0);
    expect(await m.getSession(token, { forceRefresh: true })).toBeNull();
    expect(await m.rotate(token)).toBeNull();
    session.set('x', 1);
    await expect(m.updateSession(session)).rejects.toBeInstanceOf(SessionNotFoundError);
    await expect(m.reauthenticate(session)).rejects.toBeInstanceOf(SessionNotFoundError);
    expect((await rawRow(fx, session.id))?.version).toBe(1);
    // The one re-authenticated an hour ago lives on.
    expect((await m.listUserSessions(user)).map((s) => s.id)).toEqual([kept.session.id]);
    expect(await m.getSession(kept.token)).not.toBeNull();
  });

  it('cleanup deletes sessions past the period and audits them as reauthentication_expired, dated at the period', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, reauthenticationPeriod: 2 * DAY, inactivityDuration: 7 * DAY, audit: true });
    const user = uid();
    const old = await m.createSession(user, {});
    const t0 = clock();
    clock.advance(DAY);
    const young = await m.createSession(user, {});
    clock.advance(DAY + MINUTE);
    // Both were active a minute ago: only the one signed in two days ago goes.
    await m.getSession(old.token);
    await m.getSession(young.token);
    // (Sessions of the other tests in this schema, signed in long ago, go too.)
    expect((await m.deleteExpired({ pause: 0 })).sessions).toBeGreaterThanOrEqual(1);
    expect(await countRows(fx, 'id = $1::uuid', [old.session.id])).toBe(0);
    expect(await countRows(fx, 'id = $1::uuid', [young.session.id])).toBe(1);
    const [end] = await m.listSessionEnds(user);
    expect(end).toMatchObject({ sessionId: old.session.id, reason: 'reauthentication_expired' });
    expect(end?.endedAt.getTime()).toBe(t0 + 2 * DAY);
  });
});

describe.each(DRIVERS)('requireFresh in the middleware (%s)', (driver) => {
  const fx = useStore(driver, 'step_up_mw');

  function app(m: SessionManager, handled: string[]) {
    const a = new Hono<SessionEnv>();
    a.use(sessionMiddleware({ manager: m, cookie: { prefix: 'none', secure: false } }));
    a.post('/login', async (c) => c.json({ id: (await c.var.session.login(uid())).id }));
    a.post('/reauth', async (c) => c.json({ at: (await c.var.session.reauthenticated())?.authenticatedAt.getTime() ?? null }));
    a.post('/password', requireFresh({ maxAge: 5 * MINUTE }), (c) => {
      handled.push('password');
      return c.text('changed');
    });
    return a;
  }

  it('lets a fresh session through, turns a stale one away with a typed 401 before the handler, and reauthenticated() fixes it', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const handled: string[] = [];
    const a = app(m, handled);
    const jar = new CookieJar('session');
    const post = (path: string) => a.request(path, { method: 'POST', headers: { cookie: jar.header() } });

    // No session: 401 with authenticatedAt null, handler not run.
    const anonymous = await post('/password');
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({ code: 'REAUTHENTICATION_REQUIRED', authenticatedAt: null, maxAge: 5 * MINUTE });

    jar.take(await post('/login'));
    const signedInAt = clock();
    expect((await post('/password')).status).toBe(200);
    clock.advance(5 * MINUTE + 1);
    const stale = await post('/password');
    expect(stale.status).toBe(401);
    expect(stale.headers.get('cache-control')).toBe('no-store');
    expect(await stale.json()).toEqual({
      code: 'REAUTHENTICATION_REQUIRED',
      authenticatedAt: new Date(signedInAt).toISOString(),
      maxAge: 5 * MINUTE,
    });
    expect(handled).toEqual(['password']);

    // The app re-checked the password: the step-up holds for maxAge, on this and any other isolate.
    const reauth = await post('/reauth');
    expect(await reauth.json()).toEqual({ at: clock() });
    expect(reauth.headers.getSetCookie()).toEqual([]);
    expect((await post('/password')).status).toBe(200);
    const other = app(fx.manager({ clock }), handled);
    expect((await other.request('/password', { method: 'POST', headers: { cookie: jar.header() } })).status).toBe(200);
    expect(handled).toEqual(['password', 'password', 'password']);
  });

  it('app.onError sees the typed error as the HTTPException cause and shapes the answer', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const handled: string[] = [];
    const a = app(m, handled);
    a.onError((err, c) => {
      if (err instanceof HTTPException && err.cause instanceof ReauthenticationRequiredError) {
        return c.redirect(`/confirm-password?since=${err.cause.authenticatedAt?.getTime() ?? ''}`, 303);
      }
      return c.text('error', 500);
    });
    const jar = new CookieJar('session');
    jar.take(await a.request('/login', { method: 'POST' }));
    clock.advance(HOUR);
    const res = await a.request('/password', { method: 'POST', headers: { cookie: jar.header() } });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/confirm-password?since=${clock() - HOUR}`);
    expect(handled).toEqual([]);
  });

  it('reauthenticated() without a session, or for one ended meanwhile, returns null and clears the cookie', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const a = app(m, []);
    expect(await (await a.request('/reauth', { method: 'POST' })).json()).toEqual({ at: null });
    const jar = new CookieJar('session');
    jar.take(await a.request('/login', { method: 'POST' }));
    const token = jar.get()!;
    const session = (await m.getSession(token))!;
    // Revoked from another device after this request loaded it.
    const b = new Hono<SessionEnv>();
    b.use(sessionMiddleware({ manager: m, cookie: { prefix: 'none', secure: false } }));
    b.post('/reauth', async (c) => {
      await c.var.session.get();
      await m.deleteSessionById(session.id);
      return c.json({ at: (await c.var.session.reauthenticated())?.authenticatedAt.getTime() ?? null });
    });
    const res = await b.request('/reauth', { method: 'POST', headers: { cookie: jar.header() } });
    expect(await res.json()).toEqual({ at: null });
    expect(jar.take(res).get()).toBeUndefined();
  });
});
