// The country in the new-device rule: a sign-in matches an earlier one (a live session, or a kept audit row)
// with the same device label on the same network only when their countries do not differ — a country known
// on both sides and different makes the sign-in new; an unknown one (no location, no country, Cloudflare's
// "XX") on either side leaves the decision to label and network. Read by the create statement itself (one
// statement). Against the real database, on both drivers, and through the middleware behind a trusted proxy.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { DeviceLocation } from '../../src/core/device.ts';
import { type NewDeviceEvent, type SessionEnv, sessionMiddleware } from '../../src/hono.ts';
import { DRIVERS } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

describe.each(DRIVERS)('the country in the new-device rule (%s)', (driver) => {
  const fx = useStore(driver, 'new_device_country');

  it('a country known on both sides and different makes it new; unknown (none, or "XX") on either side matches; one statement', async () => {
    const m = fx.manager({ maxSessions: 50 });
    const signer = (user: string) => async (ip: string | undefined, location?: DeviceLocation) => {
      m.db.reset();
      const r = await m.createSession(
        user,
        {},
        { device: { userAgent: FIREFOX, ip, ...(location ? { location } : {}) }, checkNewDevice: true },
      );
      expect(m.db.count).toBe(1);
      return r.newDevice;
    };
    const sign = signer(uid());
    expect(await sign('203.0.113.7', { country: 'DE' })).toBe(true);
    expect(await sign('203.0.113.8', { country: 'DE', city: 'Berlin' })).toBe(false);
    // Same label, same /24, another country: new.
    expect(await sign('203.0.113.9', { country: 'FR' })).toBe(true);
    expect(await sign('203.0.113.10', { country: 'FR', region: 'Île-de-France' })).toBe(false);
    // Unknown on the new side: label and network decide.
    expect(await sign('203.0.113.11')).toBe(false);
    expect(await sign('203.0.113.12', { city: 'Lyon' })).toBe(false);
    expect(await sign('203.0.113.13', { country: 'XX' })).toBe(false);
    // A known country alone never makes a match: another network is new, also in a country seen before.
    expect(await sign('198.51.100.1', { country: 'DE' })).toBe(true);
    // A third country on the first network: the sessions made there without a country match it.
    expect(await sign('203.0.113.14', { country: 'US' })).toBe(false);

    // Unknown on the earlier side only: matches whatever the new country.
    const other = signer(uid());
    expect(await other('192.0.2.1')).toBe(true);
    expect(await other('192.0.2.2', { country: 'US' })).toBe(false);
    expect(await other('192.0.2.3', { country: 'XX' })).toBe(false);
    // "XX" on the earlier side is unknown too.
    const third = signer(uid());
    expect(await third('192.0.2.1', { country: 'XX' })).toBe(true);
    expect(await third('192.0.2.2', { country: 'NL' })).toBe(false);
    // Tor ("T1") is a country like any other here.
    const fourth = signer(uid());
    expect(await fourth('192.0.2.1', { country: 'NL' })).toBe(true);
    expect(await fourth('192.0.2.2', { country: 'T1' })).toBe(true);
    // Without an IP on both sides (the same network), the country still tells them apart.
    const fifth = signer(uid());
    expect(await fifth(undefined, { country: 'NL' })).toBe(true);
    expect(await fifth(undefined, { country: 'NL' })).toBe(false);
    expect(await fifth(undefined, { country: 'BE' })).toBe(true);
  });

  it('kept audit rows count with their country (drizzle/0017): an end in one country does not make another country known', async () => {
    const m = fx.manager({ audit: true });
    const user = uid();
    const sign = async (country: string) => {
      const r = await m.createSession(
        user,
        {},
        { device: { userAgent: FIREFOX, ip: '203.0.113.7', location: { country } }, checkNewDevice: true },
      );
      await m.deleteSession(r.token);
      return r.newDevice;
    };
    expect(await sign('DE')).toBe(true);
    expect(await sign('FR')).toBe(true);
    expect(await sign('DE')).toBe(false);
    expect(await sign('FR')).toBe(false);
    expect(await sign('US')).toBe(true);
    expect((await m.listSessionEnds(user)).map((e) => e.location?.country)).toEqual(['US', 'FR', 'DE', 'FR', 'DE']);
  });

  it("the middleware behind a trusted proxy: a sign-in from another country on a known network runs onNewDevice; a client's own CF-IPCountry does not", async () => {
    const m = fx.manager({ maxSessions: 20 });
    const events: NewDeviceEvent[] = [];
    const waited: Promise<unknown>[] = [];
    const app = new Hono<SessionEnv>();
    app.use(
      sessionMiddleware({
        manager: m,
        cookie: { prefix: 'none', secure: false },
        clientIp: { trustedProxies: ['10.0.0.0/8'] },
        onNewDevice: (event) => {
          events.push(event);
        },
      }),
    );
    app.post('/login', async (c) => {
      await c.var.session.login(c.req.header('x-user') ?? 'u');
      return c.json({ newDevice: c.var.session.newDevice() });
    });
    const ctx = { waitUntil: (p: Promise<unknown>) => waited.push(p), passThroughOnException: () => {}, props: {} };
    const user = uid();
    const login = async (country: string, peer: string) => {
      const headers = { 'x-user': user, 'user-agent': FIREFOX, 'x-forwarded-for': '203.0.113.9', 'cf-ipcountry': country };
      const res = await app.request('/login', { method: 'POST', headers }, { incoming: { socket: { remoteAddress: peer } } }, ctx);
      await Promise.all(waited);
      return ((await res.json()) as { newDevice: boolean }).newDevice;
    };
    expect(await login('DE', '10.1.2.3')).toBe(true);
    expect(await login('DE', '10.1.2.3')).toBe(false);
    expect(await login('FR', '10.1.2.3')).toBe(true);
    expect(events.map((e) => e.ip)).toEqual(['203.0.113.9', '203.0.113.9']);
    // Straight from the client (not through a listed proxy), on the same /24: its CF-IPCountry is its own words,
    // ignored (no location stored), so it neither makes the sign-in new nor a country known.
    expect(await login('JP', '203.0.113.50')).toBe(false);
    expect((await m.listUserSessions(user)).filter((s) => s.ip === '203.0.113.50').map((s) => s.location)).toEqual([null]);
    expect(events).toHaveLength(2);
  });
});
