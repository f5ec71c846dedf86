// New-device sign-ins: createSession({ checkNewDevice }) tells, from the create statement itself, whether
// the user has a live session or a kept audit row with the same device label on the same network (IPv4 /24,
// IPv6 /48); the middleware's onNewDevice hook runs after the response, through waitUntil. Against the real
// database, on both drivers.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { type NewDeviceEvent, type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

describe.each(DRIVERS)('new-device sign-ins (%s)', (driver) => {
  const fx = useStore(driver, 'new_device');

  it('new on the first sign-in; known by device label and network (IPv4 /24, IPv6 /48); one statement', async () => {
    const m = fx.manager({ maxSessions: 20 });
    const user = uid();
    const sign = async (userAgent: string, ip?: string) => {
      m.db.reset();
      const r = await m.createSession(user, {}, { device: { userAgent, ip }, checkNewDevice: true });
      expect(m.db.count).toBe(1);
      return r.newDevice;
    };
    expect(await sign(FIREFOX, '203.0.113.7')).toBe(true);
    expect(await sign(FIREFOX, '203.0.113.200')).toBe(false);
    expect(await sign(FIREFOX, '203.0.114.7')).toBe(true);
    expect(await sign(IPHONE, '203.0.113.7')).toBe(true);
    expect(await sign(FIREFOX, '2001:db8:1:aaaa::1')).toBe(true);
    expect(await sign(FIREFOX, '2001:db8:1:bbbb::2')).toBe(false);
    expect(await sign(FIREFOX, '2001:db8:2::1')).toBe(true);
    expect(await sign(FIREFOX)).toBe(true);
    expect(await sign(FIREFOX)).toBe(false);
    // Without the option nothing is said (and the statement is the plain one).
    expect((await m.createSession(user, {}, { device: { userAgent: FIREFOX } })).newDevice).toBeUndefined();
    // Another user's devices are not this user's.
    expect((await m.createSession(uid(), {}, { device: { userAgent: FIREFOX, ip: '203.0.113.7' }, checkNewDevice: true })).newDevice).toBe(
      true,
    );
  });

  it('a device whose session ended is still known through the audit rows; an impersonation never makes one known', async () => {
    const m = fx.manager({ audit: true });
    const user = uid();
    const device = { userAgent: IPHONE, ip: '198.51.100.4' };
    const first = await m.createSession(user, {}, { device, checkNewDevice: true });
    expect(first.newDevice).toBe(true);
    await m.deleteSession(first.token);
    expect((await m.createSession(user, {}, { device, checkNewDevice: true })).newDevice).toBe(false);
    const other = uid();
    await m.createSession(other, {}, { device, impersonatedBy: 'admin', checkNewDevice: true });
    expect((await m.createSession(other, {}, { device, checkNewDevice: true })).newDevice).toBe(true);
  });

  it("the middleware's login() reports it and onNewDevice runs after the response, through waitUntil", async () => {
    const m = fx.manager({ maxSessions: 10 });
    const events: NewDeviceEvent[] = [];
    const waited: Promise<unknown>[] = [];
    let handled = false;
    let release = () => {};
    const a = new Hono<SessionEnv>();
    a.use(
      sessionMiddleware({
        manager: m,
        cookie: { prefix: 'none', secure: false },
        clientIp: (c) => c.req.header('x-test-ip'),
        // Slow on purpose: the response must not wait for it.
        onNewDevice: async (event) => {
          expect(handled).toBe(true);
          await new Promise<void>((r) => {
            release = r;
          });
          events.push(event);
        },
      }),
    );
    a.post('/login', async (c) => {
      const s = await c.var.session.login(c.req.header('x-user') ?? 'u');
      handled = true;
      return c.json({ id: s.id, newDevice: c.var.session.newDevice() });
    });
    const ctx = { waitUntil: (p: Promise<unknown>) => waited.push(p), passThroughOnException: () => {}, props: {} };
    const user = uid();
    const login = async (ip: string) => {
      handled = false;
      waited.length = 0;
      const headers = { 'x-user': user, 'user-agent': FIREFOX, 'x-test-ip': ip };
      const res = await a.request('/login', { method: 'POST', headers }, {}, ctx);
      const body = (await res.json()) as { id: string; newDevice: boolean };
      const before = events.length;
      // The response is there while the hook still waits; the runtime keeps it alive through waitUntil.
      await new Promise((r) => setTimeout(r, 20));
      expect(events.length).toBe(before);
      release();
      await Promise.all(waited);
      return { ...body, waited: waited.length };
    };
    const first = await login('203.0.113.9');
    expect(first.newDevice).toBe(true);
    expect(first.waited).toBe(1);
    expect(events).toEqual([
      { userId: user, sessionId: first.id, device: 'Firefox on Linux', userAgent: FIREFOX, ip: '203.0.113.9', at: expect.any(Date) },
    ]);
    const second = await login('203.0.113.10');
    expect(second).toMatchObject({ newDevice: false, waited: 0 });
    expect(events).toHaveLength(1);
  });

  it('onNewDevice must be a function', () => {
    expect(() => sessionMiddleware({ manager: fx.manager(), onNewDevice: 'mail' as never })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', option: 'onNewDevice' }),
    );
  });
});
