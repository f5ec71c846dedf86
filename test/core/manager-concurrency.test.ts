// Concurrency on both drivers: maxSessions under parallel creates (ARCHITECTURE.md, promise 5), compare-and-set (ARCHITECTURE.md, promise 3),
// concurrent updates of different and of the same attribute.
import { describe, expect, it } from 'vitest';
import { VersionConflictError } from '../../src/core/errors.ts';
import type { SessionManager } from '../../src/core/manager.ts';
import type { Attributes } from '../../src/core/session.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { countRows, rawRow, rawRowsOfUser, setLastAccessed, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

const MINUTE = 60_000;

/** Reads, increments `n` and stores with a compare-and-set, retrying on conflict. Returns the conflicts seen. */
async function increment<A extends Attributes>(
  m: SessionManager<A>,
  token: string,
  check: { checkVersion?: boolean; checkAttributeVersion?: boolean },
  forceRefresh: boolean,
): Promise<number> {
  for (let conflicts = 0; conflicts < 10_000; conflicts++) {
    const s = await m.getSession(token, { forceRefresh });
    if (s === null) throw new Error('session vanished');
    s.set('n', ((s.get('n') as number) + 1) as A['n']);
    try {
      await m.updateSession(s, check);
      return conflicts;
    } catch (e) {
      if (!(e instanceof VersionConflictError)) throw e;
    }
  }
  throw new Error('no progress after 10000 conflicts');
}

describe.each(DRIVERS)('concurrency (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_conc', { max: 20 });

  it('maxSessions holds under 20 parallel creates: exactly 5 rows left, evicted ones not served by their creator', async () => {
    for (let round = 0; round < 3; round++) {
      const m = fx.manager({ maxSessions: 5 });
      const user = uid();
      const created = await Promise.all(Array.from({ length: 20 }, (_, i) => m.createSession(user, { i })));
      expect(await countRows(fx, 'user_id = $1', [user])).toBe(5);
      const stored = new Set((await rawRowsOfUser(fx, user)).map((r) => r.id));
      // Every create was cached by its manager; the evicted ones must have been invalidated, even when the
      // eviction's response arrived before the evicted session's own create returned.
      const served: string[] = [];
      for (const { token } of created) {
        const s = await m.getSession(token, { touch: false });
        if (s !== null) served.push(s.id);
      }
      expect(new Set(served)).toEqual(stored);
      expect(m.cache.ids().filter((id) => !stored.has(id))).toEqual([]);
    }
  });

  it('maxSessions holds when the parallel creates come from different managers', async () => {
    const managers = Array.from({ length: 4 }, () => fx.manager({ maxSessions: 5 }));
    const user = uid();
    await Promise.all(Array.from({ length: 20 }, (_, i) => managers[i % 4]!.createSession(user)));
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(5);
  });

  it('evicts the least recently used session (by flushed last access) and invalidates it in the cache', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 5, maxStaleness: 60 * MINUTE });
    const user = uid();
    const s: { token: string; id: string }[] = [];
    for (let i = 0; i < 5; i++) {
      const { session, token } = await m.createSession(user, { i });
      s.push({ token, id: session.id });
      clock.advance(MINUTE);
    }
    // Created at t0..t4. Use 0, 1 and 3 later: 2 becomes the least recently used, though not the oldest.
    for (const i of [0, 1, 3]) {
      await m.getSession(s[i]!.token);
      clock.advance(MINUTE);
    }
    expect(await m.flushTouches()).toEqual({ rows: 3, batches: 1 });
    // All five are in this manager's cache (maxStaleness is an hour).
    expect(new Set(m.cache.ids())).toEqual(new Set(s.map((x) => x.id)));

    const sixth = await m.createSession(user, { i: 5 });
    const left = (await rawRowsOfUser(fx, user)).map((r) => r.id);
    expect(new Set(left)).toEqual(new Set([s[0]!.id, s[1]!.id, s[3]!.id, s[4]!.id, sixth.session.id]));
    m.db.reset();
    expect(await m.getSession(s[2]!.token)).toBeNull();
    expect(m.db.count).toBe(1);
    expect(await m.getSession(s[4]!.token, { touch: false })).not.toBeNull();

    // Next in line: 4 (created t4, never used since).
    await m.createSession(user);
    expect(await rawRow(fx, s[4]!.id)).toBeUndefined();
    expect(await rawRow(fx, s[0]!.id)).toBeDefined();
  });

  it('evicts expired sessions of the user before live ones, however recently they were used', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock, maxSessions: 2 });
    const user = uid();
    const old = await m.createSession(user);
    clock.advance(MINUTE);
    const expiring = await m.createSession(user, {}, { expiresAt: clock() + MINUTE });
    await setLastAccessed(fx, expiring.session.id, clock() + MINUTE / 2);
    clock.advance(2 * MINUTE);
    await m.createSession(user);
    expect(await rawRow(fx, expiring.session.id)).toBeUndefined();
    expect(await rawRow(fx, old.session.id)).toBeDefined();
  });

  it('an eviction by another manager reaches a cached copy within maxStaleness', async () => {
    const clock = fakeClock();
    const a = fx.manager({ clock, maxSessions: 1 });
    const b = fx.manager({ clock, maxSessions: 1 });
    const user = uid();
    const { token } = await a.createSession(user);
    clock.advance(10);
    await b.createSession(user);
    clock.advance(a.config.maxStaleness + 1);
    expect(await a.getSession(token)).toBeNull();
  });

  it('100 concurrent compare-and-set increments (checkVersion, one manager per client) end at exactly 100', async () => {
    const creator = fx.manager();
    const { session, token } = await creator.createSession(uid(), { n: 0 });
    const clients = Array.from({ length: 100 }, () => fx.manager<{ n: number }>({ cacheSize: 16 }));
    // Each client's cache is refreshed with the current row by a conflict, so no forceRefresh is needed.
    const conflicts = await Promise.all(clients.map((c) => increment(c, token, { checkVersion: true }, false)));
    const row = (await rawRow(fx, session.id))!;
    expect(row.attributes.n).toEqual({ v: 100, ver: 101 });
    expect(row.version).toBe(101);
    expect(conflicts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('100 concurrent compare-and-set increments (checkAttributeVersion, cacheSize 0) end at exactly 100', async () => {
    const m = fx.manager<{ n: number; other: number }>({ cacheSize: 0 });
    const { session, token } = await m.createSession(uid(), { n: 0, other: 0 });
    // Writes to another attribute run alongside; they must not make the counter lose or fail.
    const noise = (async () => {
      for (let i = 1; i <= 20; i++) {
        const s = await m.getSession(token);
        s!.set('other', i);
        await m.updateSession(s!);
      }
    })();
    const conflicts = await Promise.all(Array.from({ length: 100 }, () => increment(m, token, { checkAttributeVersion: true }, false)));
    await noise;
    const row = (await rawRow(fx, session.id))!;
    expect(row.attributes.n).toEqual({ v: 100, ver: 101 });
    expect(row.attributes.other).toEqual({ v: 20, ver: 21 });
    expect(row.version).toBe(121);
    expect(conflicts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('a failed compare-and-set writes nothing and names the conflicting attribute', async () => {
    const m = fx.manager();
    const other = fx.manager();
    const { session, token } = await m.createSession(uid(), { n: 1, x: 'a' });
    const stale = await other.getSession(token);
    session.set('n', 2);
    await m.updateSession(session);

    stale!.set('n', 10);
    const err = (await other.updateSession(stale!, { checkAttributeVersion: true }).catch((e: unknown) => e)) as VersionConflictError;
    expect(err).toBeInstanceOf(VersionConflictError);
    expect(err.code).toBe('VERSION_CONFLICT');
    expect(err.conflictingKeys).toEqual(['n']);
    expect(err.expectedVersion).toBe(1);
    expect(err.actualVersion).toBe(2);
    expect(stale!.isModified).toBe(true);
    const err2 = (await other.updateSession(stale!, { checkVersion: true }).catch((e: unknown) => e)) as VersionConflictError;
    expect(err2).toBeInstanceOf(VersionConflictError);
    const row = (await rawRow(fx, session.id))!;
    expect(row.version).toBe(2);
    expect(row.attributes.n).toEqual({ v: 2, ver: 2 });

    // An attribute check on a key nobody else touched passes although the session version moved on.
    const fresh = await fx.manager().getSession(token);
    const stale2 = await fx.manager().getSession(token);
    fresh!.set('n', 3);
    await m.updateSession(fresh!);
    stale2!.set('x', 'b');
    await m.updateSession(stale2!, { checkAttributeVersion: true });
    await expect(m.updateSession(stale2!.set('x', 'c'), { checkVersion: true })).resolves.toBe(stale2);
    expect((await rawRow(fx, session.id))!.attributes).toMatchObject({ n: { v: 3 }, x: { v: 'c', ver: 3 } });
  });

  it('a compare-and-set on an attribute deleted or created elsewhere conflicts', async () => {
    const m = fx.manager();
    const { token } = await m.createSession(uid(), { gone: 1 });
    const a = await fx.manager().getSession(token);
    const b = await fx.manager().getSession(token);
    a!.delete('gone');
    a!.set('born', 1);
    await m.updateSession(a!);
    b!.set('gone', 2);
    await expect(m.updateSession(b!, { checkAttributeVersion: true })).rejects.toBeInstanceOf(VersionConflictError);
    const c = await fx.manager().getSession(token);
    const d = await fx.manager().getSession(token);
    c!.delete('born');
    await m.updateSession(c!);
    // d saw "born" at version 1; it is gone now.
    d!.delete('born');
    await expect(m.updateSession(d!, { checkAttributeVersion: true })).rejects.toMatchObject({
      code: 'VERSION_CONFLICT',
      conflictingKeys: ['born'],
    });
  });

  it('concurrent updates of different attributes from different managers all survive (ARCHITECTURE.md, promise 3)', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { base: true });
    const writers = Array.from({ length: 20 }, () => fx.manager());
    const loaded = await Promise.all(writers.map((w) => w.getSession(token)));
    // Everyone loaded version 1 and writes its own key, with no checks.
    await Promise.all(loaded.map((s, i) => writers[i]!.updateSession(s!.set(`k${i}`, i))));
    const row = (await rawRow(fx, session.id))!;
    expect(row.version).toBe(21);
    const expected: Record<string, unknown> = { base: true };
    for (let i = 0; i < 20; i++) expected[`k${i}`] = i;
    expect((await fx.manager().getSession(token))!.toObject()).toEqual(expected);
    // Each writer's session is rebased on the row it wrote: it has its own key and everything before it.
    for (let i = 0; i < 20; i++) expect(loaded[i]!.get(`k${i}`)).toBe(i);
  });

  it('two managers deleting different attributes of one session both take effect', async () => {
    const m = fx.manager();
    const { token } = await m.createSession(uid(), { a: 1, b: 2, c: 3 });
    const x = await fx.manager().getSession(token);
    const y = await fx.manager().getSession(token);
    x!.delete('a');
    y!.delete('b');
    await Promise.all([m.updateSession(x!), m.updateSession(y!)]);
    expect((await fx.manager().getSession(token))!.toObject()).toEqual({ c: 3 });
  });

  it('the same attribute without checks: the last writer wins', async () => {
    const m = fx.manager();
    const { session, token } = await m.createSession(uid(), { k: 'initial' });
    const first = await fx.manager().getSession(token);
    const second = await fx.manager().getSession(token);
    first!.set('k', 'first');
    second!.set('k', 'second');
    await m.updateSession(first!);
    await m.updateSession(second!);
    const row = (await rawRow(fx, session.id))!;
    expect(row.attributes.k).toEqual({ v: 'second', ver: 3 });
    expect(row.version).toBe(3);

    // Concurrently: both succeed, one of the two values remains, and both bumps count.
    const p = await fx.manager().getSession(token);
    const q = await fx.manager().getSession(token);
    await Promise.all([m.updateSession(p!.set('k', 'p')), m.updateSession(q!.set('k', 'q'))]);
    const after = (await rawRow(fx, session.id))!;
    expect(['p', 'q']).toContain(after.attributes.k!.v);
    expect(after.attributes.k!.ver).toBe(5);
    expect(after.version).toBe(5);
  });
});
