// The example app's "New sign-in: Firefox on Linux, 203.0.113.x" notice (example/notices.ts): left on the
// user's other sessions by onNewDevice after the response, shown on their page, dismissed or revoked from
// there, never shown to the new session itself or for a known device. The example app against the real
// database, on both drivers.
import { describe, expect, it } from 'vitest';
import { createExampleApp, type ExampleAttributes } from '../../example/app.ts';
import { maskIp } from '../../example/notices.ts';
import { CookieJar } from '../../harness/cookies.ts';
import { DRIVERS } from '../support/db.ts';
import { uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

describe('maskIp (pure)', () => {
  it('hides the host part as the new-device rule groups addresses: IPv4 /24, IPv6 /48', () => {
    expect(maskIp('203.0.113.7')).toBe('203.0.113.x');
    expect(maskIp('2001:db8:1:aaaa::1')).toBe('2001:db8:1::/48');
    expect(maskIp('2001:db8::1')).toBe('2001:db8:0::/48');
    expect(maskIp('::1')).toBe('0:0:0::/48');
    expect(maskIp('1:2:3:4:5:6:7:8')).toBe('1:2:3::/48');
    expect(maskIp(null)).toBeNull();
    expect(maskIp('<script>')).toBeNull();
  });
});

describe.each(DRIVERS)('the example app: new sign-in notices (%s)', (driver) => {
  const fx = useStore(driver, 'example_notices');

  const setUp = () => {
    const manager = fx.manager<ExampleAttributes>({ audit: true });
    const waited: Promise<unknown>[] = [];
    const app = createExampleApp({ manager, db: fx.t.db, cookie: { prefix: 'none', secure: false } });
    const ctx = { waitUntil: (p: Promise<unknown>) => waited.push(p), passThroughOnException: () => {}, props: {} };
    /** A browser: its cookies, user agent and address. */
    const browser = (userAgent: string, ip: string) => {
      const jar = new CookieJar('session');
      const env = { incoming: { socket: { remoteAddress: ip } } };
      const send = async (method: string, path: string, form?: Record<string, string>) => {
        const res = await app.request(
          path,
          {
            method,
            headers: { cookie: jar.header(), 'user-agent': userAgent },
            ...(form ? { body: new URLSearchParams(form) } : {}),
          },
          env,
          ctx,
        );
        jar.take(res);
        // What the runtime does after the response: onNewDevice's writes.
        await Promise.all(waited.splice(0));
        return res;
      };
      return { jar, send, page: async () => (await send('GET', '/')).text() };
    };
    return { manager, browser };
  };
  const noticeIds = (page: string) => [...page.matchAll(/data-notice-id="(\d+)"/g)].map((m) => m[1] as string);

  it("a new device's sign-in is shown on the user's other devices, not on itself; a known device leaves none", async () => {
    const { manager, browser } = setUp();
    const name = uid('ada');
    const laptop = browser(CHROME, '198.51.100.20');
    const phone = browser(CHROME, '198.51.100.21');
    await laptop.send('POST', '/login', { name });
    // Same label on the same /24: a known device, no notice.
    await phone.send('POST', '/login', { name });
    expect(noticeIds(await laptop.page())).toEqual([]);
    const intruder = browser(FIREFOX, '203.0.113.77');
    await intruder.send('POST', '/login', { name });
    const [, , newest] = await manager.listUserSessions(name.toLowerCase()).then((l) => l.sort((a, b) => +a.createdAt - +b.createdAt));
    for (const other of [laptop, phone]) {
      const page = await other.page();
      expect(page).toContain('New sign-in: Firefox on Linux, 203.0.113.x');
      expect(page).toContain(`data-new-session-id="${newest?.id}"`);
      expect(noticeIds(page)).toHaveLength(1);
    }
    expect(await intruder.page()).not.toContain('New sign-in');
  });

  it('"It was me" dismisses it for that device only; "Revoke it" ends the new session and its notice', async () => {
    const { manager, browser } = setUp();
    const name = uid('bob');
    const user = name.toLowerCase();
    const laptop = browser(CHROME, '198.51.100.20');
    const tablet = browser(FIREFOX, '192.0.2.10');
    await laptop.send('POST', '/login', { name });
    await tablet.send('POST', '/login', { name });
    const [tabletNotice] = noticeIds(await laptop.page());
    expect(tabletNotice).toBeDefined();
    // Another session cannot dismiss the laptop's notice by its id.
    const intruder = browser(FIREFOX, '203.0.113.5');
    await intruder.send('POST', '/login', { name });
    await intruder.send('POST', '/notices/dismiss', { id: tabletNotice as string });
    expect(noticeIds(await laptop.page())).toContain(tabletNotice);
    await laptop.send('POST', '/notices/dismiss', { id: tabletNotice as string });
    const left = noticeIds(await laptop.page());
    expect(left).not.toContain(tabletNotice);
    expect(left).toHaveLength(1); // the intruder's
    // The tablet was told of the intruder too; it revokes it from the notice.
    const page = await tablet.page();
    const id = /data-notice-id="(\d+)" data-new-session-id="([0-9a-f-]{36})"/.exec(page);
    expect(id).not.toBeNull();
    await tablet.send('POST', '/sessions/revoke', { id: id?.[2] as string, notice: id?.[1] as string });
    expect(noticeIds(await tablet.page())).toEqual([]);
    expect((await manager.listUserSessions(user)).map((s) => s.id)).not.toContain(id?.[2]);
    expect(await intruder.page()).toContain('<form method="post" action="/login">');
  });
});
