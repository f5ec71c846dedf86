// Devices and audit: device metadata recorded at creation in the same statement, listed with
// the caller's session marked, revocation scoped to its owner, and (with `audit`) one record per session
// end with its reason, pruned after its retention. Against the real database, on both drivers.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { describeUserAgent, isIpAddress, MAX_USER_AGENT_LABEL_INPUT, MAX_USER_AGENT_LENGTH, prepareDevice } from '../../src/core/device.ts';
import { ConfigError, InvalidArgumentError } from '../../src/core/errors.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import { type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { forwardedClient, resolveClientIp } from '../../src/middleware/client-ip.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { countRows, sha256Hex, uid } from '../support/manager-helpers.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

async function auditRows(fx: StoreFixture, where = 'true', params: unknown[] = []) {
  const r = await fx.t.admin.query<{ session_id: string; user_id: string; reason: string; ended_at: number; device: string | null }>(
    `SELECT session_id::text AS session_id, user_id, reason, (extract(epoch from ended_at) * 1000)::float8 AS ended_at, device
     FROM "${fx.schemaName}"."session_audit" WHERE ${where} ORDER BY id`,
    params,
  );
  return r.rows;
}

describe('device labels and addresses (pure)', () => {
  it('labels common agents from the documented table, and never throws', () => {
    expect(describeUserAgent(FIREFOX)).toBe('Firefox on Linux');
    expect(describeUserAgent(IPHONE)).toBe('Safari on iPhone');
    expect(
      describeUserAgent(
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
      ),
    ).toBe('Edge on Windows');
    expect(
      describeUserAgent(
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
      ),
    ).toBe('Chrome on macOS');
    expect(describeUserAgent('curl/8.5.0')).toBe('curl');
    expect(describeUserAgent('')).toBe('Unknown device');
    expect(describeUserAgent('x'.repeat(100_000))).toBe('Unknown device');
  });

  it('labels a long User-Agent from the whole header (its browser named past the 512 stored characters), stores it cut', () => {
    // The reported case: an 8 KB agent whose browser comes after character 512 was labelled "Linux".
    const long = `Mozilla/5.0 (X11; Linux x86_64; ${'x'.repeat(8000)}) Gecko/20100101 Firefox/133.0`;
    expect(describeUserAgent(long)).toBe('Firefox on Linux');
    const stored = prepareDevice({ userAgent: long });
    expect(stored).toMatchObject({ device: 'Firefox on Linux', userAgent: long.slice(0, MAX_USER_AGENT_LENGTH) });
    // Read up to MAX_USER_AGENT_LABEL_INPUT characters, no further.
    const far = `${'x'.repeat(MAX_USER_AGENT_LABEL_INPUT)} Firefox/133.0`;
    expect(describeUserAgent(far)).toBe('Unknown device');
    expect(describeUserAgent(far.slice(-MAX_USER_AGENT_LABEL_INPUT))).toBe('Firefox');
    // The Safari rules hold as before on real agents, and WebKit-based Chrome is not called Safari.
    expect(describeUserAgent(`${'y'.repeat(600)} ${IPHONE}`)).toBe('Safari on iPhone');
    expect(describeUserAgent('Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko)')).toBe('Safari on macOS');
    expect(describeUserAgent('Mozilla/5.0 (Macintosh) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome')).toBe('macOS');
  });

  it('accepts IPv4/IPv6 addresses only, and stores an IPv4-mapped address as IPv4', () => {
    for (const ok of ['1.2.3.4', '::1', 'fe80::1', '2001:db8::8a2e:370:7334', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4'])
      expect(isIpAddress(ok)).toBe(true);
    for (const bad of ['1.2.3', '256.0.0.1', '1::2::3', '1.2.3.4:80', '[::1]', 'localhost', '', '1:2:3:4:5:6:7:8:9']) {
      expect(isIpAddress(bad)).toBe(false);
    }
    expect(prepareDevice({ ip: '::FFFF:10.0.0.1' })?.ip).toBe('10.0.0.1');
    expect(() => prepareDevice({ ip: 'evil' })).toThrow(InvalidArgumentError);
    expect(() => prepareDevice({ label: 'x'.repeat(129) })).toThrow(/device\.label/);
    expect(prepareDevice({ userAgent: 'u'.repeat(2000) })?.userAgent).toHaveLength(512);
  });

  it('X-Forwarded-For counts only behind a listed proxy, read from the right', () => {
    const trusted = (ip: string) => ip.startsWith('10.');
    // Straight from the internet: the header is the client's own words, ignored.
    expect(forwardedClient('198.51.100.9', '1.1.1.1', trusted)).toBe('198.51.100.9');
    // Through our proxy: the rightmost address our proxies did not add.
    expect(forwardedClient('10.0.0.2', '1.1.1.1, 203.0.113.5, 10.0.0.3', trusted)).toBe('203.0.113.5');
    expect(forwardedClient('10.0.0.2', 'garbage, 203.0.113.5', trusted)).toBe('203.0.113.5');
    expect(forwardedClient('10.0.0.2', '203.0.113.5, garbage', trusted)).toBeUndefined();
    expect(() => resolveClientIp({ trustedProxies: ['10.0.0.0/33'] })).toThrow(ConfigError);
    expect(() => resolveClientIp({ trustedProxies: [] })).toThrow(/clientIp.trustedProxies/);
    expect(() => resolveClientIp('x-forwarded-for')).toThrow(ConfigError);
  });
});

describe.each(DRIVERS)('device metadata and listings (%s)', (driver) => {
  const fx = useStore(driver, 'devices');

  it('records the device in the create statement itself and lists it, newest use first, the current one marked', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 10 });
    const user = uid();
    m.db.reset();
    const laptop = await m.createSession(
      user,
      { secret: 's' },
      { device: { userAgent: FIREFOX, ip: '203.0.113.7', label: 'Work laptop' } },
    );
    expect(m.db.count).toBe(1);
    clock.advance(SECOND);
    const phone = await m.createSession(user, {}, { device: { userAgent: IPHONE, ip: '2001:db8::1' } });
    clock.advance(SECOND);
    await m.getSession(laptop.token); // a touch not yet written: the laptop is the most recent now
    const list = await m.listUserSessions(user, { current: phone.session });
    expect(list.map((s) => [s.id, s.device, s.ip, s.label, s.current])).toEqual([
      [laptop.session.id, 'Firefox on Linux', '203.0.113.7', 'Work laptop', false],
      [phone.session.id, 'Safari on iPhone', '2001:db8::1', null, true],
    ]);
    expect(list[0]?.userAgent).toBe(FIREFOX);
    const text = JSON.stringify(list);
    for (const t of [laptop.token, phone.token]) {
      expect(text).not.toContain(t);
      expect(text).not.toContain(sha256Hex(t));
    }
    expect((await m.listUserSessions(user, { current: laptop.session.id })).find((s) => s.current)?.id).toBe(laptop.session.id);
  });

  it('bad device input is a typed error naming the field, and nothing is written', async () => {
    const m = fx.manager();
    const user = uid();
    m.db.reset();
    for (const device of [{ ip: 'not-an-ip' }, { label: 'l'.repeat(200) }, { userAgent: 42 }, { ip: '1.2.3.4\u0000' }, 'x']) {
      await expect(m.createSession(user, {}, { device: device as never })).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    expect(m.db.count).toBe(0);
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);
  });

  it('stores the location given with the device in the create statement, lists it; a session without one lists null', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const user = uid();
    m.db.reset();
    const here = await m.createSession(
      user,
      {},
      { device: { ip: '203.0.113.7', location: { country: 'DE', region: 'Hesse', city: 'Frankfurt am Main', colo: 'FRA' } } },
    );
    const none = await m.createSession(user, {}, { device: { ip: '203.0.113.8', location: { city: undefined } } });
    expect(m.db.count).toBe(2);
    const list = await m.listUserSessions(user);
    expect(list.find((s) => s.id === here.session.id)?.location).toEqual({
      country: 'DE',
      region: 'Hesse',
      city: 'Frankfurt am Main',
      colo: 'FRA',
    });
    expect(list.find((s) => s.id === none.session.id)?.location).toBeNull();
  });

  it('bad location input is a typed error naming the field, and nothing is written', async () => {
    const m = fx.manager();
    const user = uid();
    m.db.reset();
    const cases: [unknown, string][] = [
      [{ country: 'Germany' }, 'device.location.country'],
      [{ country: 'de' }, 'device.location.country'],
      [{ country: 49 }, 'device.location.country'],
      [{ city: 'c'.repeat(101) }, 'device.location.city'],
      [{ region: 'a\u0000b' }, 'device.location.region'],
      [{ colo: '\ud800' }, 'device.location.colo'],
      [{ latitude: '50.1' }, 'device.location.latitude'],
      ['DE', 'device.location'],
      [['DE'], 'device.location'],
    ];
    for (const [location, field] of cases) {
      const e = await m.createSession(user, {}, { device: { location: location as never } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).message).toContain(field);
    }
    expect(m.db.count).toBe(0);
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);
  });

  it("revoking one session is scoped to its owner: another user's session is not found and nothing is deleted", async () => {
    const m = fx.manager();
    const alice = uid('alice');
    const bob = uid('bob');
    const a = await m.createSession(alice);
    const b = await m.createSession(bob);
    m.db.reset();
    expect(await m.deleteSessionById(b.session.id, { userId: alice })).toBe(false);
    expect(m.db.count).toBe(1);
    expect(await m.getSession(b.token, { forceRefresh: true })).not.toBeNull();
    expect(await m.deleteSessionById(a.session.id, { userId: alice })).toBe(true);
    expect(await m.getSession(a.token, { forceRefresh: true })).toBeNull();
    await expect(m.deleteSessionById(b.session.id, { userId: '' })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe.each(DRIVERS)('audit of session ends (%s)', (driver) => {
  const fx = useStore(driver, 'audit');

  it('is off by default: no audit row is ever written', async () => {
    const m = fx.manager();
    const user = uid();
    const s = await m.createSession(user);
    await m.rotate(s.token);
    await m.deleteAllUserSessions(user);
    expect(await auditRows(fx, 'user_id = $1', [user])).toEqual([]);
  });

  it('records every kind of session end exactly once, with its reason and device, and nothing that authenticates', async () => {
    const clock = fakeClock();
    const idle = 10 * SECOND;
    const m = fx.manager({ clock, audit: true, maxSessions: 2, inactivityDuration: idle, lastAccessUpdateInterval: SECOND });
    const user = uid();
    const device = { device: { userAgent: FIREFOX, ip: '198.51.100.4' } };
    const ends = new Map<string, string>();
    const tokens: string[] = [];
    const create = async (u = user, options: object = device) => {
      const c = await m.createSession(u, {}, options);
      tokens.push(c.token);
      return c;
    };

    const logout = await create();
    await m.deleteSession(logout.token);
    ends.set(logout.session.id, 'logout');
    const replaced = await create();
    await m.deleteSession(replaced.session, { reason: 'replaced' });
    ends.set(replaced.session.id, 'replaced');
    const revoked = await create();
    await m.deleteSessionById(revoked.session.id, { userId: user });
    ends.set(revoked.session.id, 'revoked');
    const adminRevoked = await create();
    await m.deleteSessionById(adminRevoked.session.id);
    ends.set(adminRevoked.session.id, 'admin_revoked');

    const rotated = await create();
    const r = (await m.rotate(rotated.token))!;
    tokens.push(r.token);
    await m.deleteSession(r.token);
    ends.set(rotated.session.id, 'logout'); // after its 'rotated' record

    // maxSessions 2: a third session evicts the least recently used.
    const e1 = await create();
    clock.advance(SECOND);
    const e2 = await create();
    await m.getSession(e2.token);
    clock.advance(SECOND);
    const e3 = await create();
    ends.set(e1.session.id, 'evicted');

    // Expiry, found by cleanup: absolute, and idle.
    const absolute = await create(uid(), { ...device, expiresAt: clock() + 2 * SECOND });
    const idleOne = await create(uid());
    m.takePendingTouches();
    clock.advance(idle + 2 * SECOND);
    await m.deleteExpired({ pause: 0 });
    ends.set(absolute.session.id, 'expired');
    ends.set(idleOne.session.id, 'idle_expired');
    // e2 and e3 went idle too (and were cleaned): their records say so.
    ends.set(e2.session.id, 'idle_expired');
    ends.set(e3.session.id, 'idle_expired');

    const everywhere = uid();
    const ev1 = await create(everywhere);
    const ev2 = await create(everywhere);
    await m.deleteAllUserSessions(everywhere);
    ends.set(ev1.session.id, 'user_sessions_deleted');
    ends.set(ev2.session.id, 'user_sessions_deleted');
    const grouped = await create(uid(), { groupId: 'tenant-1' });
    await m.deleteSessionsByGroup('tenant-1');
    ends.set(grouped.session.id, 'group_deleted');

    const rows = await auditRows(fx, 'session_id = ANY($1::uuid[])', [[...ends.keys()]]);
    const byId = new Map<string, string[]>();
    for (const row of rows) byId.set(row.session_id, [...(byId.get(row.session_id) ?? []), row.reason]);
    for (const [id, reason] of ends) {
      const recorded = byId.get(id);
      expect(recorded, `session ${id}`).toEqual(id === rotated.session.id ? ['rotated', reason] : [reason]);
    }
    expect(rows.find((row) => row.session_id === logout.session.id)?.device).toBe('Firefox on Linux');
    // The idle end is dated when the session went idle, not when cleanup found it.
    const idleRow = rows.find((row) => row.session_id === idleOne.session.id);
    expect(idleRow?.ended_at).toBe(idleOne.session.createdAt.getTime() + idle);

    // Readable per user, newest first; sessionEnd gives a session's final end.
    const mine = await m.listSessionEnds(user);
    expect(mine.length).toBeGreaterThanOrEqual(7);
    for (let i = 1; i < mine.length; i++) expect(mine[i - 1]!.endedAt.getTime()).toBeGreaterThanOrEqual(mine[i]!.endedAt.getTime());
    expect((await m.sessionEnd(revoked.session.id))?.reason).toBe('revoked');
    expect((await m.sessionEnd(rotated.session.id))?.reason).toBe('logout');
    expect(await m.sessionEnd(crypto.randomUUID())).toBeNull();

    // A dump of the audit table authenticates nobody: no token, no token hash, in any column.
    const dump = JSON.stringify((await fx.t.admin.query(`SELECT * FROM "${fx.schemaName}"."session_audit"`)).rows);
    for (const t of tokens) {
      expect(dump).not.toContain(t);
      expect(dump).not.toContain(sha256Hex(t));
    }

    // deleteAllSessions: one record per session it ended.
    const last = await create(uid());
    await m.deleteAllSessions();
    expect((await auditRows(fx, 'session_id = $1', [last.session.id])).map((x) => x.reason)).toEqual(['all_deleted']);
  });

  it('prunes audit records past auditRetention in cleanup (fake clock)', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, audit: true, auditRetention: 30 * DAY });
    const user = uid();
    const old = await m.createSession(user);
    await m.deleteSession(old.token);
    clock.advance(20 * DAY);
    const recent = await m.createSession(user);
    await m.deleteSession(recent.token);
    clock.advance(15 * DAY);
    const r = await m.deleteExpired({ pause: 0 });
    expect(r.audit).toBeGreaterThanOrEqual(1);
    expect((await auditRows(fx, 'user_id = $1', [user])).map((x) => x.session_id)).toEqual([recent.session.id]);
    // With audit turned off later, older records are still pruned.
    clock.advance(30 * DAY);
    await fx.manager({ clock, auditRetention: 30 * DAY }).deleteExpired({ pause: 0 });
    expect(await auditRows(fx, 'user_id = $1', [user])).toEqual([]);
  });
});

describe.each(DRIVERS)('the middleware records the device and tells a dead cookie why (%s)', (driver) => {
  const fx = useStore(driver, 'devices_mw');

  function app(m: SessionManager, options: Parameters<typeof sessionMiddleware>[0] extends infer O ? Partial<O> : never = {}) {
    const a = new Hono<SessionEnv>();
    a.use(sessionMiddleware({ manager: m, cookie: { prefix: 'none', secure: false }, ...options }));
    a.post('/login', async (c) => c.json({ id: (await c.var.session.login(c.req.header('x-user') ?? 'u')).id }));
    a.get('/me', async (c) => c.json({ session: (await c.var.session.get())?.id ?? null, ended: await c.var.session.ended() }));
    return a;
  }
  const ipOf = async (m: SessionManager, user: string) => (await m.listUserSessions(user))[0]?.ip ?? null;

  it('login() stores the user agent and the platform address; a spoofed X-Forwarded-For is ignored by default', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const user = uid();
    // app.request() has no socket: the platform gives no address, so none is recorded, whatever the header says.
    await app(m).request('/login', { method: 'POST', headers: { 'x-user': user, 'user-agent': IPHONE, 'x-forwarded-for': '6.6.6.6' } });
    const [info] = await m.listUserSessions(user);
    expect(info?.device).toBe('Safari on iPhone');
    expect(info?.ip).toBeNull();
    // A platform address (what @hono/node-server passes as env.incoming) is recorded; the header still is not.
    const env = { incoming: { socket: { remoteAddress: '::ffff:198.51.100.20' } } };
    const u2 = uid();
    await app(m).request('/login', { method: 'POST', headers: { 'x-user': u2, 'x-forwarded-for': '6.6.6.6' } }, env);
    expect(await ipOf(m, u2)).toBe('198.51.100.20');
    // Behind a listed proxy, the forwarded client counts.
    const u3 = uid();
    const proxied = { incoming: { socket: { remoteAddress: '10.1.2.3' } } };
    await app(m, { clientIp: { trustedProxies: ['10.0.0.0/8'] } }).request(
      '/login',
      { method: 'POST', headers: { 'x-user': u3, 'x-forwarded-for': '6.6.6.6, 203.0.113.9' } },
      proxied,
    );
    expect(await ipOf(m, u3)).toBe('203.0.113.9');
    // ...but not when the request did not come through one.
    const u4 = uid();
    await app(m, { clientIp: { trustedProxies: ['10.0.0.0/8'] } }).request(
      '/login',
      { method: 'POST', headers: { 'x-user': u4, 'x-forwarded-for': '203.0.113.9' } },
      env,
    );
    expect(await ipOf(m, u4)).toBe('198.51.100.20');
  });

  it('CF-IPCountry counts only from a request through a listed proxy: a spoofed one is ignored without trustedProxies or from elsewhere', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const locationOf = async (user: string) => (await m.listUserSessions(user))[0]?.location ?? null;
    const direct = { incoming: { socket: { remoteAddress: '198.51.100.20' } } };
    const proxied = { incoming: { socket: { remoteAddress: '10.1.2.3' } } };
    const signIn = async (via: Hono<SessionEnv>, headers: Record<string, string>, env: object) => {
      const user = uid();
      const res = await via.request('/login', { method: 'POST', headers: { 'x-user': user, ...headers } }, env);
      expect(res.status).toBe(200);
      return user;
    };
    // No trustedProxies: the header is the client's own words, whoever sent it.
    expect(await locationOf(await signIn(app(m), { 'cf-ipcountry': 'KP' }, direct))).toBeNull();
    expect(await locationOf(await signIn(app(m), { 'cf-ipcountry': 'KP' }, proxied))).toBeNull();
    const behind = app(m, { clientIp: { trustedProxies: ['10.0.0.0/8'] } });
    // trustedProxies, but the request did not come through a listed proxy.
    expect(await locationOf(await signIn(behind, { 'cf-ipcountry': 'KP' }, direct))).toBeNull();
    // Through a listed proxy: stored (upper-cased), with the forwarded client.
    const u = await signIn(behind, { 'cf-ipcountry': 'de', 'x-forwarded-for': '203.0.113.9' }, proxied);
    expect((await m.listUserSessions(u))[0]).toMatchObject({ ip: '203.0.113.9', location: { country: 'DE' } });
    // A value that is not a country code is dropped; the sign-in still succeeds.
    expect(await locationOf(await signIn(behind, { 'cf-ipcountry': 'Germany' }, proxied))).toBeNull();
    // 'none' records neither address nor location.
    expect(await locationOf(await signIn(app(m, { clientIp: 'none' }), { 'cf-ipcountry': 'DE' }, proxied))).toBeNull();
  });

  it('the reported attack: whatever address the platform hands over, login() succeeds; a zone is stripped, garbage is stored as null and reported once', async () => {
    const m = fx.manager({ maxSessions: 10 });
    const reported: unknown[] = [];
    const a = app(m, { onBackgroundError: (e) => reported.push(e) });
    const login = async (remoteAddress: unknown, headers: Record<string, string> = {}, via = a) => {
      const user = uid();
      const res = await via.request(
        '/login',
        { method: 'POST', headers: { 'x-user': user, ...headers } },
        { incoming: { socket: { remoteAddress } } },
      );
      expect(res.status, String(remoteAddress)).toBe(200);
      return ipOf(m, user);
    };
    // A link-local IPv6 peer, as Node reports it: the zone is the receiving host's interface, not the client's.
    expect(await login('fe80::1%eth0')).toBe('fe80::1');
    expect(await login('FE80::ABCD%25')).toBe('fe80::abcd');
    expect(await login('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(reported).toEqual([]);
    for (const bad of ['garbage', '1.2.3.4, 5.6.7.8', '1.2.3.4:80', 'x'.repeat(100), '%eth0', 42]) expect(await login(bad)).toBeNull();
    // Reported once per middleware, as a typed error naming the option, with the value quoted.
    expect(reported).toHaveLength(1);
    expect(reported[0]).toBeInstanceOf(InvalidArgumentError);
    expect((reported[0] as InvalidArgumentError).argument).toBe('clientIp');
    expect((reported[0] as Error).message).toContain('"garbage"');
    // The app's own function and its trusted proxies get the same treatment.
    const own = app(m, { clientIp: () => 'fe80::2%wlan0', onBackgroundError: (e) => reported.push(e) });
    expect(await login(undefined, {}, own)).toBe('fe80::2');
    const proxied = app(m, { clientIp: { trustedProxies: ['fe80::/10'] }, onBackgroundError: (e) => reported.push(e) });
    expect(await login('fe80::9%eth0', { 'x-forwarded-for': '203.0.113.4' }, proxied)).toBe('203.0.113.4');
    expect(await login('fe80::9%eth0', { 'x-forwarded-for': 'fe80::7%eth1' }, proxied)).toBe('fe80::7');
    expect(await login('fe80::9%eth0', { 'x-forwarded-for': 'nonsense' }, proxied)).toBeNull();
    expect(reported).toHaveLength(2);
  });

  it('with audit on, a browser whose session was revoked elsewhere is told why, once; without audit, ended() is null', async () => {
    const m = fx.manager({ audit: true, maxSessions: 10 });
    const a = app(m);
    const user = uid();
    const res = await a.request('/login', { method: 'POST', headers: { 'x-user': user } });
    const cookies = res.headers
      .getSetCookie()
      .map((l) => l.split(';')[0])
      .join('; ');
    // The token alone: ended() reads the dead token itself, no id cookie is set.
    expect(cookies).toMatch(/^session=[\w-]{43}$/);
    const { id } = (await res.json()) as { id: string };
    expect(await (await a.request('/me', { headers: { cookie: cookies } })).json()).toEqual({ session: id, ended: null });
    await m.deleteSessionById(id, { userId: user });
    const dead = await a.request('/me', { headers: { cookie: cookies } });
    expect(await dead.json()).toEqual({ session: null, ended: { reason: 'revoked', endedAt: expect.any(String) } });
    expect(dead.headers.getSetCookie().join('\n')).toMatch(/^session=;/);
    // An id cookie an earlier release set is cleared with the token.
    const legacy = await a.request('/me', { headers: { cookie: `${cookies}; session.id=${id}` } });
    expect(legacy.headers.getSetCookie().join('\n')).toMatch(/session=;.*\n.*session\.id=;/s);

    const off = fx.manager({ maxSessions: 10 });
    const plain = app(off);
    const r2 = await plain.request('/login', { method: 'POST', headers: { 'x-user': user } });
    expect(r2.headers.getSetCookie().join()).not.toContain('session.id');
  });
});

describe.each(DRIVERS)('the worker records what its cleanup ends, with --audit (%s)', (driver) => {
  const fx = useStore(driver, 'audit_worker');

  it('expired sessions deleted by the worker leave an expired record; pruning follows --audit-retention', async () => {
    const { startWorker } = await import('../../worker/main.ts');
    const { databaseUrl } = await import('../support/db.ts');
    const m = fx.manager({ audit: true });
    const user = uid();
    const s = await m.createSession(user, {}, { expiresAt: Date.now() + 300 });
    // An old record, past the worker's retention.
    await fx.t.admin.query(
      `INSERT INTO "${fx.schemaName}"."session_audit" (session_id, user_id, reason, ended_at, created_at, last_accessed)
       VALUES (gen_random_uuid(), $1, 'logout', now() - interval '2 days', now() - interval '3 days', now() - interval '3 days')`,
      [user],
    );
    await new Promise((r) => setTimeout(r, 400));
    const w = await startWorker({
      databaseUrl: databaseUrl(),
      insecureDev: true,
      port: 0,
      schemaName: fx.schemaName,
      audit: true,
      auditRetention: DAY,
      cleanupInterval: HOUR,
      log: 'silent',
    });
    try {
      await w.ready();
      // The run at start may hold the cleanup lock: wait for a run of our own to complete.
      for (let i = 0; i < 100 && !(await w.runCleanup()).ran; i++) await new Promise((r) => setTimeout(r, 50));
      const rows = await auditRows(fx, 'user_id = $1', [user]);
      expect(rows.map((r) => [r.session_id, r.reason])).toEqual([[s.session.id, 'expired']]);
    } finally {
      await w.close();
    }
  });
});
