// The fast paths keep the contract: a cache hit checks no token but serves only what a checked
// token put there, and the access bookkeeping a cache entry keeps survives its LRU dropping it.
import { describe, expect, it } from 'vitest';
import { SessionManager } from '../../src/core/manager.ts';
import { pgQueryableOf as pgClientOf } from '../../src/db/executor.ts';
import { objectNames } from '../../src/db/names.ts';
import { hotStatements } from '../../src/db/statements.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { rawRow, uid } from '../support/manager-helpers.ts';
import { useStore } from '../support/store-suite.ts';

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

describe.each(DRIVERS)('named prepared statements (%s)', (driver) => {
  const fx = useStore(driver, 'hot_prep');
  const fy = useStore(driver, 'hot_prep2');

  /** Every hot operation once; returns what each gave back. */
  const exercise = async (m: ReturnType<typeof fx.manager>) => {
    const user = uid();
    const { session, token } = await m.createSession(user, { a: 1 });
    const read = await m.getSession(token, { forceRefresh: true });
    read!.set('b', 2);
    await m.updateSession(read!);
    await m.flushTouches();
    const again = await m.getSession(token, { forceRefresh: true });
    const deleted = await m.deleteSession(token);
    return { id: session.id, object: again!.toObject(), deleted, gone: await m.getSession(token, { forceRefresh: true }) };
  };

  it('run through the driver client of node-postgres and Neon, one round trip each', async () => {
    const m = fx.manager();
    expect(m.store.prepared).toBe(true);
    m.db.reset();
    const r = await exercise(m);
    expect(r).toMatchObject({ object: { a: 1, b: 2 }, deleted: true, gone: null });
    // create, get, update, flush, get, delete, get: each one statement.
    expect(m.db.count).toBe(7);
  });

  it('every other driver goes through db.execute (a database without a pg client)', async () => {
    let executed = 0;
    const plain = {
      execute: (q: Parameters<typeof fx.t.db.execute>[0]) => {
        executed++;
        return fx.t.db.execute(q);
      },
    };
    const m = new SessionManager(plain, { schemaName: fx.schemaName });
    expect(m.store.prepared).toBe(false);
    const r = await exercise(m as ReturnType<typeof fx.manager>);
    expect(r).toMatchObject({ object: { a: 1, b: 2 }, deleted: true, gone: null });
    expect(executed).toBe(7);
  });

  it('two schemas on one pool never share a statement name', async () => {
    const a = fx.manager();
    const b = new SessionManager(a.db, { schemaName: fy.schemaName });
    const ra = await exercise(a);
    const rb = await exercise(b as ReturnType<typeof fx.manager>);
    expect(ra.object).toEqual({ a: 1, b: 2 });
    expect(rb.object).toEqual({ a: 1, b: 2 });
  });

  it.each([
    ['26000', 'prepared statement "x" does not exist'],
    ['42P05', 'prepared statement "x" already exists'],
  ])('a pooler without prepared statements (%s) turns them off, and the call still succeeds', async (code, message) => {
    let refused = 0;
    let executed = 0;
    const db = {
      execute: (q: Parameters<typeof fx.t.db.execute>[0]) => {
        executed++;
        return fx.t.db.execute(q);
      },
      $client: Object.assign(Object.create(pgClientOf(fx.t.db) as object), {
        query: async () => {
          refused++;
          throw Object.assign(new Error(message), { code });
        },
      }),
    };
    const m = new SessionManager(db, { schemaName: fx.schemaName });
    expect(m.store.prepared).toBe(true);
    const r = await exercise(m as ReturnType<typeof fx.manager>);
    expect(r).toMatchObject({ object: { a: 1, b: 2 }, deleted: true, gone: null });
    expect(refused).toBe(1);
    expect(m.store.prepared).toBe(false);
    expect(executed).toBe(7);
  });
});

describe('statements made once per set of table names', () => {
  it("a manager bound to one request's connection (a Store per request) reuses the hot statements, not remakes and rehashes them", () => {
    const names = objectNames('public', 'hp_');
    const a = hotStatements(names);
    expect(hotStatements(names)).toBe(a);
    expect(hotStatements(names).get).toBe(a.get);
    // Other names get their own statements (the text names their tables).
    const b = hotStatements(objectNames('public', 'hq_'));
    expect(b.get.text).not.toBe(a.get.text);
  });
});
