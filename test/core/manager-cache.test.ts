// The per-isolate cache standalone (promise 1 without a sync worker), rotate (promise 12) and the cost
// of each operation in statements (promises 7 and 8). Freshness runs on a fake clock.
import { describe, expect, it } from 'vitest';
import { SessionCache, type SessionRecord } from '../../src/core/cache.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { countRows, interceptNext, rawRow, table, uid } from '../support/manager-helpers.ts';
import { counting, useStore } from '../support/store-suite.ts';

const SECOND = 1000;
const HOUR = 3_600_000;

function record(id: string, version: number, value: unknown = version): SessionRecord {
  return {
    size: 1500,
    id,
    userId: 'u',
    groupId: null,
    version,
    createdAt: 0,
    updatedAt: 0,
    lastAccessed: 0,
    expiresAt: Number.MAX_SAFE_INTEGER,
    authenticatedAt: 0,
    impersonatedBy: null,
    attributes: new Map([['v', { value, version, expiresAt: null }]]),
  };
}

describe.each(DRIVERS)('cache freshness (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_cache');

  it('serves an entry from the cache for maxStaleness after the read, then reads the database again', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxStaleness: 2 * SECOND });
    const { session, token } = await m.createSession(uid(), { v: 'old' });
    // A change "typed into psql": the manager cannot know about it.
    await fx.t.admin.query(`UPDATE ${table(fx)} SET attributes = '{"v": {"v": "new", "ver": 2}}', version = 2 WHERE id = $1::uuid`, [
      session.id,
    ]);
    m.db.reset();
    clock.advance(2 * SECOND);
    expect((await m.getSession(token))!.get('v')).toBe('old');
    expect(m.db.count).toBe(0);
    clock.advance(1);
    const s = await m.getSession(token);
    expect(m.db.count).toBe(1);
    expect(s!.get('v')).toBe('new');
    expect(s!.version).toBe(2);
    // The re-read is cached again from the time of that read.
    clock.advance(2 * SECOND);
    expect((await m.getSession(token))!.get('v')).toBe('new');
    expect(m.db.count).toBe(1);
  });

  it('sees a change made by another manager after maxStaleness', async () => {
    const clock = fakeClock();
    const a = fx.manager({ clock });
    const b = fx.manager({ clock });
    const { token } = await a.createSession(uid(), { v: 1 });
    const s = await b.getSession(token);
    await b.updateSession(s!.set('v', 2));
    // b sees its own write at once.
    expect((await b.getSession(token))!.get('v')).toBe(2);
    clock.advance(a.config.maxStaleness + 1);
    expect((await a.getSession(token))!.get('v')).toBe(2);
  });

  it('sees a deletion by plain SQL after maxStaleness', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session, token } = await m.createSession(uid());
    await fx.t.admin.query(`DELETE FROM ${table(fx)} WHERE id = $1::uuid`, [session.id]);
    clock.advance(m.config.maxStaleness + 1);
    expect(await m.getSession(token)).toBeNull();
  });

  it('with maxStaleness 0 every read goes to the database', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxStaleness: 0 });
    const { session, token } = await m.createSession(uid(), { v: 'old' });
    m.db.reset();
    expect(await m.getSession(token)).not.toBeNull();
    await fx.t.admin.query(`UPDATE ${table(fx)} SET attributes = '{"v": {"v": "new", "ver": 2}}' WHERE id = $1::uuid`, [session.id]);
    // Same millisecond on the manager's clock: still not served from memory.
    expect((await m.getSession(token))!.get('v')).toBe('new');
    expect(m.db.count).toBe(2);
  });

  it('with cacheSize 0 nothing is cached', async () => {
    const m = fx.manager({ cacheSize: 0 });
    const { token } = await m.createSession(uid());
    m.db.reset();
    await m.getSession(token);
    await m.getSession(token);
    expect(m.db.count).toBe(2);
    expect(m.cache.size).toBe(0);
  });

  it('forceRefresh reads the database and refreshes the cache', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxStaleness: HOUR });
    const { session, token } = await m.createSession(uid(), { v: 'old' });
    await fx.t.admin.query(`UPDATE ${table(fx)} SET attributes = '{"v": {"v": "new", "ver": 2}}' WHERE id = $1::uuid`, [session.id]);
    expect((await m.getSession(token))!.get('v')).toBe('old');
    m.db.reset();
    expect((await m.getSession(token, { forceRefresh: true }))!.get('v')).toBe('new');
    expect((await m.getSession(token))!.get('v')).toBe('new');
    expect(m.db.count).toBe(1);
  });

  it('markFresh extends trust past maxStaleness; resetFreshness takes it back', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxStaleness: SECOND });
    const { token } = await m.createSession(uid());
    const t0 = clock();
    clock.advance(5 * SECOND);
    // The sync client vouches that every change committed before t0+4.5s has been applied.
    m.cache.markFresh(t0 + 4.5 * SECOND);
    m.db.reset();
    expect(await m.getSession(token)).not.toBeNull();
    expect(m.db.count).toBe(0);
    // markFresh never moves backwards.
    m.cache.markFresh(t0);
    expect(m.cache.freshAsOf).toBe(t0 + 4.5 * SECOND);
    clock.set(t0 + 5.5 * SECOND + 1);
    expect(await m.getSession(token)).not.toBeNull();
    expect(m.db.count).toBe(1);

    clock.advance(2 * SECOND);
    m.cache.markFresh(clock());
    expect(await m.getSession(token)).not.toBeNull();
    expect(m.db.count).toBe(1);
    m.cache.resetFreshness();
    expect(await m.getSession(token)).not.toBeNull();
    expect(m.db.count).toBe(2);
  });

  it('a miss racing a change by this manager does not put the old row back in the cache', async () => {
    const clock = fakeClock();
    const db = interceptNext(fx.t.db);
    const m = new SessionManager(counting(db), { schemaName: fx.schemaName, clock, maxStaleness: HOUR });
    const { token } = await fx.manager({ clock }).createSession(uid(), { v: 'old' });
    // While m's SELECT is in flight (its result already read), m itself deletes the session.
    db.arm(async () => {
      expect(await m.deleteSession(token)).toBe(true);
    });
    const raced = await m.getSession(token);
    // That read started before the delete: returning what it saw is fine; caching it is not.
    expect(raced?.get('v')).toBe('old');
    expect(m.cache.size).toBe(0);
    const before = db.count;
    expect(await m.getSession(token)).toBeNull();
    expect(db.count).toBe(before + 1);
  });

  it('a miss racing an invalidation from the feed does not cache the old row', async () => {
    const clock = fakeClock();
    const db = interceptNext(fx.t.db);
    const m = new SessionManager(counting(db), { schemaName: fx.schemaName, clock, maxStaleness: HOUR });
    const writer = fx.manager({ clock });
    const { session, token } = await writer.createSession(uid(), { v: 'old' });
    db.arm(async () => {
      const s = await writer.getSession(token);
      await writer.updateSession(s!.set('v', 'new'));
      // What the sync client does when the change arrives on the feed.
      m.cache.invalidate([session.id]);
    });
    expect((await m.getSession(token))!.get('v')).toBe('old');
    expect((await m.getSession(token))!.get('v')).toBe('new');
  });

  it('clear() fences off fills in flight', async () => {
    const clock = fakeClock();
    const db = interceptNext(fx.t.db);
    const m = new SessionManager(counting(db), { schemaName: fx.schemaName, clock, maxStaleness: HOUR });
    const { token } = await fx.manager({ clock }).createSession(uid());
    db.arm(async () => m.clearCache());
    // Without the fence the read below would be cached for an hour.
    await m.getSession(token);
    expect(m.cache.size).toBe(0);
  });
});

describe('SessionCache', () => {
  it('drops a fill that began before an invalidation of that id, keeps fills of other ids and later fills', () => {
    const c = new SessionCache(10);
    const epoch = c.begin();
    c.invalidate(['a']);
    expect(c.fill('tok-a', record('a', 1), 0, epoch)).toBe(false);
    expect(c.get('tok-a', 0, 1000)).toBeUndefined();
    expect(c.fill('tok-b', record('b', 1), 0, epoch)).toBe(true);
    expect(c.fill('tok-a', record('a', 2), 0, c.begin())).toBe(true);
    expect(c.get('tok-a', 0, 1000)?.version).toBe(2);
  });

  it('drops a fill that began before clear()', () => {
    const c = new SessionCache(10);
    const epoch = c.begin();
    c.clear();
    expect(c.fill('t', record('a', 1), 0, epoch)).toBe(false);
    expect(c.size).toBe(0);
  });

  it('keeps the newer row when two misses of one session return out of order', () => {
    const c = new SessionCache(10);
    const epoch = c.begin();
    expect(c.fill('t', record('a', 3), 0, epoch)).toBe(true);
    expect(c.fill('t', record('a', 2), 0, epoch)).toBe(false);
    expect(c.get('t', 0, 1000)?.version).toBe(3);
  });

  it('invalidating an id drops its entry; a new token for the same id replaces the old one', () => {
    const c = new SessionCache(10);
    c.fill('old', record('a', 1), 0, c.begin());
    c.fill('new', record('a', 2), 0, c.begin());
    expect(c.get('old', 0, 1000)).toBeUndefined();
    expect(c.ids()).toEqual(['a']);
    c.invalidate(['a']);
    expect(c.get('new', 0, 1000)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('remembers invalidations of ids it never cached, beyond the LRU size, and refuses fills it cannot check', () => {
    const c = new SessionCache(1);
    const epoch = c.begin();
    // More invalidations than the fence remembers (at least 1024 ids): the oldest fall out.
    c.invalidate(Array.from({ length: 3000 }, (_, i) => `x${i}`));
    expect(c.fill('t', record('x0', 1), 0, epoch)).toBe(false);
    expect(c.fill('t', record('unrelated', 1), 0, epoch)).toBe(false);
    expect(c.fill('t', record('unrelated', 1), 0, c.begin())).toBe(true);
  });

  it('serves an entry while max(readAt, freshAsOf) >= now - maxStaleness', () => {
    const c = new SessionCache(10);
    c.fill('t', record('a', 1), 1000, c.begin());
    expect(c.get('t', 2000, 1000)).toBeDefined();
    expect(c.get('t', 2001, 1000)).toBeUndefined();
    c.markFresh(5000);
    expect(c.get('t', 6000, 1000)).toBeDefined();
    expect(c.get('t', 6001, 1000)).toBeUndefined();
  });
});

describe.each(DRIVERS)('rotate (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_rotate');

  it('issues a new token for the same session; the old one is dead at once here and after maxStaleness elsewhere', async () => {
    const clock = fakeClock();
    const a = fx.manager({ clock });
    const b = fx.manager({ clock });
    const { session, token: oldToken } = await a.createSession(uid(), { cart: [1, 2] }, { groupId: 'g' });
    expect(await b.getSession(oldToken)).not.toBeNull(); // cached in b
    a.db.reset();
    const rotated = await a.rotate(oldToken);
    expect(a.db.count).toBe(1);
    expect(rotated).not.toBeNull();
    const { token: newToken, session: s } = rotated!;
    expect(newToken).not.toBe(oldToken);
    expect(newToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.id).toBe(session.id);
    expect(s.toObject()).toEqual({ cart: [1, 2] });
    expect(s.groupId).toBe('g');
    expect(s.expiresAt).toEqual(session.expiresAt);
    const row = (await rawRow(fx, session.id))!;
    expect(row.version).toBe(2);
    expect(row.expires_at).toBe(session.expiresAt.getTime());

    // Same manager: immediately.
    expect(await a.getSession(oldToken)).toBeNull();
    expect((await a.getSession(newToken))!.toObject()).toEqual({ cart: [1, 2] });
    // Another manager: its cached copy is allowed to live for maxStaleness, not longer.
    clock.advance(b.config.maxStaleness + 1);
    expect(await b.getSession(oldToken)).toBeNull();
    expect((await b.getSession(newToken))!.id).toBe(session.id);
    // Rotating the dead token again does nothing.
    expect(await a.rotate(oldToken)).toBeNull();
  });

  it('rotates a Session object and rebases it; its pending changes are kept for the next update', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { a: 1 });
    // The usual sign-in: set what the sign-in learnt, rotate against fixation, save after the handler.
    session.set('signedIn', true);
    const rotated = await m.rotate(session);
    expect(rotated!.session.id).toBe(session.id);
    expect(session.version).toBe(2);
    expect(session.isModified).toBe(true);
    expect(session.get('signedIn')).toBe(true);
    await m.updateSession(session, { checkVersion: true });
    expect(await m.getSession(token)).toBeNull();
    const again = await fx.manager().getSession(rotated!.token);
    expect(again!.toObject()).toEqual({ a: 1, signedIn: true });
    expect(again!.version).toBe(3);
  });

  it('returns null for unknown and deleted sessions', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid());
    await m.deleteSession(token);
    expect(await m.rotate(token)).toBeNull();
    expect(await m.rotate(session)).toBeNull();
    expect(await m.rotate('A'.repeat(43))).toBeNull();
  });
});

describe.each(DRIVERS)('cost in statements (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_cost');

  it('a cache hit does no I/O, a miss exactly one statement, an unknown token one each time', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { token } = await m.createSession(uid());
    m.db.reset();
    for (let i = 0; i < 20; i++) await m.getSession(token);
    expect(m.db.count).toBe(0);
    clock.advance(m.config.maxStaleness + 1);
    await m.getSession(token);
    expect(m.db.count).toBe(1);
    m.clearCache();
    await m.getSession(token);
    expect(m.db.count).toBe(2);
    const unknown = 'Q'.repeat(42).concat('A');
    expect(await m.getSession(unknown)).toBeNull();
    expect(await m.getSession(unknown)).toBeNull();
    expect(m.db.count).toBe(4);
  });

  it('create, update, delete, rotate and every bulk delete are exactly one statement each', async () => {
    const m = fx.manager({ maxSessions: 2 });
    const user = uid();
    const counts: Record<string, number> = {};
    const measure = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      m.db.reset();
      const r = await fn();
      counts[name] = m.db.count;
      return r;
    };
    const { session, token } = await measure('createSession', () => m.createSession(user, { a: 1 }, { groupId: 'g-cost' }));
    const crowded = uid();
    await m.createSession(crowded);
    await m.createSession(crowded);
    await measure('createSession evicting', () => m.createSession(crowded));
    expect(await countRows(fx, 'user_id = $1', [crowded])).toBe(2);
    session.set('a', 2).set('b', [1]);
    await measure('updateSession', () => m.updateSession(session));
    session.set('a', 3);
    await measure('updateSession checkVersion', () => m.updateSession(session, { checkVersion: true }));
    session.delete('b');
    await measure('updateSession checkAttributeVersion', () => m.updateSession(session, { checkAttributeVersion: true }));
    const r1 = await measure('rotate(token)', () => m.rotate(token));
    const r2 = await measure('rotate(session)', () => m.rotate(r1!.session));
    await measure('listUserSessions', () => m.listUserSessions(user));
    await measure('deleteAttributeFromAllUserSessions', () => m.deleteAttributeFromAllUserSessions(user, 'a'));
    await measure('deleteSession(token)', () => m.deleteSession(r2!.token));
    const x = await m.createSession(user);
    await measure('deleteSession(session)', () => m.deleteSession(x.session));
    const y = await m.createSession(user);
    await measure('deleteSessionById', () => m.deleteSessionById(y.session.id));
    await m.createSession(user);
    await measure('deleteAllUserSessions', () => m.deleteAllUserSessions(user));
    await m.createSession(user, {}, { groupId: 'g-cost' });
    await measure('deleteSessionsByGroup', () => m.deleteSessionsByGroup('g-cost'));
    expect(counts).toEqual({
      createSession: 1,
      'createSession evicting': 1,
      updateSession: 1,
      'updateSession checkVersion': 1,
      'updateSession checkAttributeVersion': 1,
      'rotate(token)': 1,
      'rotate(session)': 1,
      listUserSessions: 1,
      deleteAttributeFromAllUserSessions: 1,
      'deleteSession(token)': 1,
      'deleteSession(session)': 1,
      deleteSessionById: 1,
      deleteAllUserSessions: 1,
      deleteSessionsByGroup: 1,
    });
  });

  it('getSession never writes: misses and hits leave the row untouched until flushTouches', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const { session, token } = await m.createSession(uid());
    const before = (await rawRow(fx, session.id))!;
    for (let i = 0; i < 10; i++) {
      clock.advance(SECOND);
      expect(await m.getSession(token, { forceRefresh: i % 2 === 0 })).not.toBeNull();
    }
    const after = (await rawRow(fx, session.id))!;
    // xmin changes with any UPDATE of the row, even one that writes the same values.
    expect(after.xmin).toBe(before.xmin);
    expect(after).toEqual(before);
    expect(m.pendingTouchCount).toBe(1);
    m.db.reset();
    await m.flushTouches();
    expect(m.db.count).toBe(1);
    expect((await rawRow(fx, session.id))!.last_accessed).toBe(clock());
  });
});
