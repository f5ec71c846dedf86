// Impersonation: an administrator opens a session as a user. It carries impersonatedBy (Session, listings,
// audit rows), lives at most impersonationMaxLifetime, evicts none of the user's sessions, cannot step up
// or start another impersonation, and the user sees and revokes it from the device list. Against the real
// database, on both drivers.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import { ImpersonationError, InvalidArgumentError } from '../../src/core/errors.ts';
import { requireFresh, type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { countRows, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe('options', () => {
  it('impersonationMaxLifetime is validated, naming the option; default 1 h', async () => {
    const { SessionManager } = await import('../../src/core/manager.ts');
    const db = { execute: async () => ({ rows: [] }) };
    for (const bad of [0, -1, Number.NaN, '1h'])
      expect(() => new SessionManager(db, { impersonationMaxLifetime: bad as number })).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', option: 'impersonationMaxLifetime' }),
      );
    expect(new SessionManager(db).config.impersonationMaxLifetime).toBe(HOUR);
  });
});

describe.each(DRIVERS)('impersonation (%s)', (driver) => {
  const fx = useStore(driver, 'impersonation');

  it('the session carries impersonatedBy everywhere, lives at most impersonationMaxLifetime and evicts nothing', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 2, audit: true });
    const user = uid();
    const own = await Promise.all([1, 2].map(() => m.createSession(user, {})));
    const { session, token } = await m.createSession(user, {}, { impersonatedBy: 'admin-1' });
    expect(session.impersonatedBy).toBe('admin-1');
    expect(session.expiresAt.getTime()).toBe(clock() + HOUR);
    // The user's two own sessions are still there (maxSessions 2): an administrator looking signs nobody out.
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(3);
    const other = fx.manager({ clock });
    expect((await other.getSession(token))?.impersonatedBy).toBe('admin-1');
    const listed = await m.listUserSessions(user);
    expect(listed.map((s) => [s.id, s.impersonatedBy]).sort()).toEqual(
      [...own.map((o) => [o.session.id, null]), [session.id, 'admin-1']].sort(),
    );
    // The user revokes it from the device list; the audit row keeps who it was.
    expect(await m.deleteSessionById(session.id, { userId: user })).toBe(true);
    expect(await m.sessionEnd(session.id)).toMatchObject({ reason: 'revoked', impersonatedBy: 'admin-1', actor: { kind: 'user' } });
    expect(await m.getSession(token)).toBeNull();
    // Past its lifetime it is gone, and the user's own sessions are not.
    const again = await m.createSession(user, {}, { impersonatedBy: 'admin-1' });
    clock.advance(HOUR);
    expect(await m.getSession(again.token)).toBeNull();
    expect(await m.getSession(own[0]!.token)).not.toBeNull();
  });

  it('bad input writes nothing: an impersonator id that is not a string, an expiry beyond the lifetime', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, impersonationMaxLifetime: 10 * MINUTE });
    const user = uid();
    for (const impersonatedBy of ['', 7, 'x'.repeat(513)]) {
      await expect(m.createSession(user, {}, { impersonatedBy: impersonatedBy as string })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        argument: 'impersonatedBy',
      });
    }
    await expect(m.createSession(user, {}, { impersonatedBy: 'a', expiresAt: clock() + 11 * MINUTE })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);
    const ok = await m.createSession(user, {}, { impersonatedBy: 'a', expiresAt: clock() + 5 * MINUTE });
    expect(ok.session.expiresAt.getTime()).toBe(clock() + 5 * MINUTE);
  });

  it('cannot step up: reauthenticate is an ImpersonationError and writes nothing; never fresh', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session } = await m.createSession(uid(), {}, { impersonatedBy: 'admin-2' });
    m.db.reset();
    await expect(m.reauthenticate(session)).rejects.toMatchObject({ code: 'IMPERSONATION_NOT_ALLOWED', impersonatedBy: 'admin-2' });
    expect(m.db.count).toBe(0);
    expect(session.authenticatedWithin(HOUR)).toBe(false);
    expect(() => m.assertFresh(session, HOUR)).toThrow(expect.objectContaining({ code: 'REAUTHENTICATION_REQUIRED' }));
  });

  it('in the middleware: login({ impersonatedBy }) opens one; from it, no other impersonation and no step-up', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const a = new Hono<SessionEnv>();
    a.use(sessionMiddleware({ manager: m, cookie: { prefix: 'none', secure: false } }));
    a.post('/impersonate', async (c) => {
      const s = await c.var.session.login(c.req.header('x-user') ?? 'u', {}, { impersonatedBy: 'admin-3' });
      return c.json({ id: s.id, by: s.impersonatedBy });
    });
    a.post('/reauth', async (c) => c.json({ at: (await c.var.session.reauthenticated())?.authenticatedAt ?? null }));
    a.post('/fresh', requireFresh({ maxAge: HOUR }), (c) => c.text('ok'));
    a.get('/me', async (c) => c.json({ by: (await c.var.session.get())?.impersonatedBy ?? null }));
    a.onError((err, c) =>
      err instanceof ImpersonationError
        ? c.json({ code: err.code }, 403)
        : 'getResponse' in err
          ? (err as { getResponse(): Response }).getResponse()
          : c.text('x', 500),
    );
    const jar = new CookieJar('session');
    const user = uid();
    const res = await a.request('/impersonate', { method: 'POST', headers: { 'x-user': user } });
    jar.take(res);
    const { id } = (await res.json()) as { id: string };
    expect(await (await a.request('/me', { headers: { cookie: jar.header() } })).json()).toEqual({ by: 'admin-3' });
    // From the impersonation: another one is refused before anything is deleted or written.
    const nested = await a.request('/impersonate', { method: 'POST', headers: { 'x-user': uid(), cookie: jar.header() } });
    expect(nested.status).toBe(403);
    expect(await nested.json()).toEqual({ code: 'IMPERSONATION_NOT_ALLOWED' });
    expect(nested.headers.getSetCookie()).toEqual([]);
    expect(await countRows(fx, 'id = $1::uuid', [id])).toBe(1);
    expect((await a.request('/reauth', { method: 'POST', headers: { cookie: jar.header() } })).status).toBe(403);
    expect((await a.request('/fresh', { method: 'POST', headers: { cookie: jar.header() } })).status).toBe(401);
  });
});
