// A sign-in over an old session in one statement (createSession's `replaces`, the middleware's login() over
// an old cookie): the old session's delete, its audit row and the new session's create are one round trip,
// with what the delete then the create did in two: the same audit row (reason `replaced`, by its holder,
// told to the old cookie's holder), the per-user cap counting without the old session, its id in the change
// record, the new-device check, and the cache. Against the real database, on both drivers.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { CookieJar } from '../../harness/cookies.ts';
import { readChanges } from '../../src/db/feed.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

describe.each(DRIVERS)('a sign-in replacing an old session, in one statement (%s)', (driver) => {
  const fx = useStore(driver, 'login_replace');

  /** The audit row of a session as the app could compare it: without its ids and times. */
  const auditOf = async (sessionId: string) => {
    const r = await fx.t.admin.query(
      `SELECT reason, actor_kind, actor_id, user_id, device, ip, token_check IS NOT NULL AS checked, ended_at >= created_at AS ordered
         FROM "${fx.schemaName}"."session_audit" WHERE session_id = $1`,
      [sessionId],
    );
    return r.rows;
  };

  it('one statement; the old session ends with the audit row deleteSession(token, { reason: "replaced" }) writes', async () => {
    const m = fx.manager({ audit: true, maxSessions: 10 });
    const user = uid();
    const device = { userAgent: FIREFOX, ip: '203.0.113.5' };
    // Two statements, as before: the delete, then the create.
    const before = await m.createSession(user, {}, { device });
    await m.deleteSession(before.token, { reason: 'replaced' });
    await m.createSession(user, {}, { device });
    // One statement.
    const old = await m.createSession(user, { theme: 'x' }, { device });
    m.db.reset();
    const created = await m.createSession(user, {}, { device, replaces: old.token });
    expect(m.db.count).toBe(1);
    expect(await m.getSession(old.token)).toBeNull();
    expect(await m.getSession(created.token)).not.toBeNull();
    expect(await auditOf(old.session.id)).toEqual(await auditOf(before.session.id));
    expect(await auditOf(old.session.id)).toEqual([
      {
        reason: 'replaced',
        actor_kind: 'user',
        actor_id: null,
        user_id: user,
        device: 'Firefox on Linux',
        ip: '203.0.113.5',
        checked: true,
        ordered: true,
      },
    ]);
    // The old token's holder is told why (as the middleware's ended() asks).
    expect(await m.sessionEndOfToken(old.token)).toMatchObject({ reason: 'replaced', sessionId: old.session.id });
    // A Session replaces through its own token; a malformed or unknown token replaces nothing (and still creates).
    const s = await m.getSession(created.token);
    const third = await m.createSession(user, {}, { replaces: s as NonNullable<typeof s> });
    expect(await m.getSession(created.token)).toBeNull();
    m.db.reset();
    await m.createSession(user, {}, { replaces: 'not-a-token' });
    await m.createSession(user, {}, { replaces: old.token });
    expect(m.db.count).toBe(2);
    expect(await m.getSession(third.token)).not.toBeNull();
  });

  it('the per-user cap counts without the old session: nothing else is evicted; without audit no row', async () => {
    for (const audit of [true, false]) {
      const m = fx.manager({ audit, maxSessions: 2 });
      const user = uid();
      // The one replaced is the newest: counted, it would keep its place and push `b` out.
      const b = await m.createSession(user, {});
      await new Promise((r) => setTimeout(r, 5));
      const a = await m.createSession(user, {});
      const c = await m.createSession(user, {}, { replaces: a.token });
      expect(await m.getSession(a.token, { forceRefresh: true })).toBeNull();
      expect(await m.getSession(b.token, { forceRefresh: true })).not.toBeNull();
      expect(await m.getSession(c.token, { forceRefresh: true })).not.toBeNull();
      expect((await m.listUserSessions(user)).map((x) => x.id).sort()).toEqual([b.session.id, c.session.id].sort());
      expect((await auditOf(a.session.id)).map((r) => r.reason)).toEqual(audit ? ['replaced'] : []);
      expect(await auditOf(b.session.id)).toEqual([]);
      // Over the cap once more: the least recently used other one is evicted, as without `replaces`.
      const d = await m.createSession(user, {});
      expect(await m.getSession(b.token, { forceRefresh: true })).toBeNull();
      expect(await m.getSession(d.token, { forceRefresh: true })).not.toBeNull();
    }
  });

  it("the old session's id is in the change record; another manager's cache drops it", async () => {
    const m = fx.manager({ maxSessions: 10 });
    const other = fx.manager({ maxSessions: 10, maxStaleness: 60_000 });
    const names = m.names;
    const old = await m.createSession(uid(), {});
    expect(await other.getSession(old.token)).not.toBeNull();
    const { cursor } = await readChanges(fx.t.db, names, null);
    await m.createSession(uid(), {}, { replaces: old.token });
    const page = await readChanges(fx.t.db, names, cursor);
    expect(page.ids).toContain(old.session.id);
    other.cache.invalidate(page.ids);
    expect(await other.getSession(old.token)).toBeNull();
  });

  it("the middleware's login over an old cookie: one statement, the old session replaced, the device known", async () => {
    const m = fx.manager({ audit: true, maxSessions: 10 });
    const app = new Hono<SessionEnv>();
    app.use(sessionMiddleware({ manager: m, cookie: { prefix: 'none', secure: false }, csrf: false, onNewDevice: () => {} }));
    app.post('/login', async (c) => {
      const s = await c.var.session.login(c.req.query('user') ?? 'u');
      return c.json({ id: s.id, newDevice: c.var.session.newDevice() });
    });
    app.get('/me', async (c) => c.json((await c.var.session.get())?.id ?? null));
    const user = uid();
    const jar = new CookieJar();
    const login = async () => {
      m.db.reset();
      const res = await app.request(`/login?user=${user}`, { method: 'POST', headers: { 'user-agent': FIREFOX, cookie: jar.header() } });
      jar.take(res);
      return { ...((await res.json()) as { id: string; newDevice: boolean }), statements: m.db.count };
    };
    const first = await login();
    expect(first).toMatchObject({ newDevice: true, statements: 1 });
    const second = await login();
    // Over the old cookie: still one statement; the device is the old session's.
    expect(second).toMatchObject({ newDevice: false, statements: 1 });
    expect(second.id).not.toBe(first.id);
    expect(await auditOf(first.id)).toMatchObject([{ reason: 'replaced', actor_kind: 'user' }]);
    expect(await (await app.request('/me', { headers: { cookie: jar.header() } })).json()).toBe(second.id);
    expect(await m.listUserSessions(user)).toHaveLength(1);
  });
});
