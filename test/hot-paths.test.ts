// The fast paths of issue 12 keep the contract: a cache hit checks no token but serves only what a checked
// token put there, and the access bookkeeping a cache entry keeps survives its LRU dropping it.
import { describe, expect, it } from 'vitest';
import { DRIVERS, fakeClock } from './support/db.ts';
import { rawRow, uid } from './support/manager-helpers.ts';
import { useStore } from './support/store-suite.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe.each(DRIVERS)('cache-hit bookkeeping (%s)', (driver) => {
  const fx = useStore(driver, 'hot_paths');

  it('a cached session whose touch the touch LRU dropped keeps its newest access (alive, and flushed)', async () => {
    const clock = fakeClock();
    // cacheSize 10: the touch LRU holds max(1000, 2 × cacheSize) = 1000 sessions.
    const m = fx.manager({ clock, cacheSize: 10, inactivityDuration: HOUR, maxStaleness: 10 * HOUR });
    const { session, token } = await m.createSession(uid(), { a: 1 });
    clock.advance(50 * MINUTE);
    expect(await m.getSession(token)).not.toBeNull(); // touch at +50 min, stored last access still +0
    // 1,000 other sessions' touches push this one's out of the touch LRU.
    m.restoreTouches(Array.from({ length: 1000 }, () => [crypto.randomUUID(), clock()] as const));
    clock.advance(50 * MINUTE);
    // +100 min: the stored last access is 100 min old (idle past the hour), the newest known one 50 min.
    m.db.reset();
    expect((await m.getSession(token))?.id).toBe(session.id);
    expect(m.db.count).toBe(0);
    await m.flushTouches();
    const row = await rawRow(fx, session.id);
    expect(row!.last_accessed).toBe(clock());
  });

  it('a hit serves only a token that was checked: a malformed or foreign string never reaches the cache or the database', async () => {
    const m = fx.manager({ maxStaleness: HOUR });
    const { token } = await m.createSession(uid(), {});
    m.db.reset();
    // Same length, one character outside the alphabet; a longer string with the token as prefix.
    for (const bad of [`${token.slice(0, 42)}!`, `${token}A`, token.slice(0, 42), ` ${token.slice(1)}`]) {
      expect(await m.getSession(bad)).toBeNull();
    }
    expect(await m.getSession(42 as unknown as string)).toBeNull();
    expect(m.db.count).toBe(0);
    expect(await m.getSession(token)).not.toBeNull();
  });
});
